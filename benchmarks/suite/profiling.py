"""Where the time goes in one rpccore scenario: a py-spy (or cProfile) summary.

``python benchmarks/run.py --profile zmq:calls`` runs that scenario's rpccore
trial over and over while py-spy samples this process (``--gil``: only the
thread holding the GIL, i.e. where Python code spends its time; threads
waiting on a lock or a socket are not counted), then
prints the share of samples by *area* of the code (rpccore core, the
driver, the backend library, json, threading, ...) and the functions with
the most samples at the top of the stack (self time) and anywhere on it
(inclusive). For a cross-process scenario (``xproc-*``) only the client
process is sampled. Without py-spy on PATH, cProfile profiles the calling
thread.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")

AREAS = (  # first match wins: (label, substring of the frame's file)
    ("rpccore core", "rpccore/"),
    ("driver rpccore_zmq", "rpccore_zmq/"), ("driver rpccore_rabbit", "rpccore_rabbit/"),
    ("driver rpccore_qpid", "rpccore_qpid/"), ("driver rpccore_nats", "rpccore_nats/"),
    ("matchmaker", "rpccore_matchmaker"), ("nats-py", "nats/"), ("asyncio", "asyncio/"),
    ("pyzmq", "zmq/"), ("kombu / py-amqp", "kombu/"), ("kombu / py-amqp", "amqp/"),
    ("proton", "proton/"), ("json", "json/"), ("threading / queue", "threading.py"),
    ("threading / queue", "queue.py"), ("socket / selectors", "socket.py"),
    ("socket / selectors", "selectors.py"), ("benchmark harness", "benchmarks/"),
)


def area(file: str) -> str:
    for label, needle in AREAS:
        if needle in file:
            return label
    return "other (stdlib, uuid, logging...)"


def parse_raw(lines: Iterable[str]) -> list[tuple[list[tuple[str, str]], int]]:
    """py-spy ``--format raw`` lines: ``frame;frame;... count`` -> [(frames, count)]."""
    stacks = []
    for line in lines:
        line = line.rstrip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        frames = []
        for frame in stack.split(";"):
            match = FRAME.match(frame)
            frames.append((match["func"], match["file"]) if match else (frame, ""))
        stacks.append((frames, int(count)))
    return stacks


def summarize(stacks: list[tuple[list[tuple[str, str]], int]], top: int = 12) -> str:
    """Areas by self samples, then the top functions by self and inclusive samples."""
    total = sum(c for _, c in stacks) or 1
    by_area: collections.Counter[str] = collections.Counter()
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        func, file = frames[-1]
        by_area[area(file)] += count
        self_time[f"{func} ({file})"] += count
        for name in {f"{f} ({p})" for f, p in frames}:
            inclusive[name] += count
    out = [f"{total} samples of the thread holding the GIL", "", "self time by area:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in by_area.most_common()]
    out += ["", "top functions, self time:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in self_time.most_common(top)]
    out += ["", "top functions, inclusive (rpccore and drivers only):"]
    mine = [(n, c) for n, c in inclusive.most_common() if "rpccore" in n]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in mine[:top]]
    return "\n".join(out)


def profile(driver: str, key: str, seconds: float = 8.0) -> str:
    """Profile rpccore's side of scenario ``key`` of ``driver``; returns the summary."""
    from benchmarks.suite import child
    from benchmarks.suite.cells import CellFactory
    from benchmarks.suite.scenarios import SCENARIOS, _trial, count_messages
    from benchmarks.suite.workload import RemoteServerWorkload, RpccoreWorkload

    scenario = next(s for s in SCENARIOS if s.key == key)
    factory = CellFactory(driver)
    server = child.start(factory.spec()) if scenario.remote else None
    workload: RemoteServerWorkload | RpccoreWorkload = (
        RemoteServerWorkload(factory) if scenario.remote else RpccoreWorkload(factory))
    trial = _trial(workload, scenario, count_messages(driver, scenario, quick=True))
    try:
        trial()  # warm up
        spy = shutil.which("py-spy")
        if spy is None:
            return "py-spy not found; cProfile of the calling thread:\n" + _cprofile(trial)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.txt"
            proc = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--format", "raw",
                                     "--gil", "--rate", "250", "--duration", str(int(seconds)),
                                     "-o", str(raw)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # py-spy attaches
            while proc.poll() is None:
                trial()
            if not raw.exists():
                return f"py-spy failed (exit {proc.returncode}); try running as root"
            return summarize(parse_raw(raw.read_text().splitlines()))
    finally:
        workload.close()
        if server is not None:
            child.stop(server)


def _cprofile(trial: object) -> str:
    import cProfile
    import io
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    trial()  # type: ignore[operator]
    prof.disable()
    stream = io.StringIO()
    pstats.Stats(prof, stream=stream).sort_stats("tottime").print_stats(15)
    return stream.getvalue()
