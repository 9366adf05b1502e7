"""Which scenarios run for a driver, each interleaved with its peers.

For every scenario, rpccore and each peer that supports the same work are
run alternately (A, B, A, B, ...) by ``benchmarks.measure.interleave``, and
the medians become one :class:`~benchmarks.suite.model.Row`. A scenario that
raises is recorded as an error (the run then exits non-zero), and the next
one runs.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.measure import Result, interleave
from benchmarks.suite import child, otel
from benchmarks.suite.aio_workload import ACALLS
from benchmarks.suite.cells import CellFactory
from benchmarks.suite.model import Figures, Row
from benchmarks.suite.notifications import NotCarriedHere
from benchmarks.suite.peers import (
    CALLS,
    CASTS,
    FANOUT,
    NOTIFY,
    STREAM,
    THREADS,
    Peer,
    start_peers,
)
from benchmarks.suite.progress import Progress
from benchmarks.suite.workload import Measured, RemoteServerWorkload, RpccoreWorkload

KIB = 1024


@dataclass(frozen=True)
class Scenario:
    """``kind`` is casts, calls, fanout, notifications or stream; ``n`` counts
    messages (or streamed items) per repeat at scale 1."""

    key: str
    label: str
    kind: str
    n: int
    threads: int = 1
    size: int = 100
    remote: bool = False  # server in another process
    quick: bool = False   # part of --quick (the guarded scenarios)
    quick_for: tuple[str, ...] = ()  # part of --quick for these drivers only
    topic: str = ""  # a remote scenario's topic, when not the default one
    version: str = ""  # calls that carry this API version (rpccore only, no peers)
    otel: bool = False  # instrumented, no-op OpenTelemetry providers (rpccore only)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("casts", "casts, 1 thread", CASTS, 2000, quick=True),
    Scenario("calls", "sequential calls", CALLS, 400, quick=True),
    Scenario("calls8", "calls from 8 threads", CALLS, 800, threads=8, quick=True),
    # what a version in the message costs (checked by client and dispatcher)
    Scenario("calls-versioned", "sequential calls at version 1.0", CALLS, 400, quick=True,
             version="1.0"),
    # beside casts (issue 20), only on drivers that carry notifications
    Scenario("notifications", "notifications, 1 thread", NOTIFY, 2000, quick=True),
    # what OpenTelemetry costs with a no-op provider (issue 22: within 10% of calls)
    Scenario("calls-otel", "sequential calls, OpenTelemetry with no-op providers", CALLS, 400,
             quick=True, otel=True),
    # items of one rpc.stream, judged against the same driver's casts (issue 19)
    Scenario("stream", "streamed items, one stream", STREAM, 2000, quick=True),
    # asyncio (rpccore.aio): ``threads`` tasks with a call each in flight (issue 21)
    Scenario("aio-calls", "asyncio calls, 64 in flight", ACALLS, 3200, threads=64, quick=True),
    Scenario("calls32", "calls from 32 threads", CALLS, 1280, threads=32),
    Scenario("fanout3", "fanout casts to 3 servers", FANOUT, 1000),
    Scenario("casts-1k", "casts, 1 KiB payload", CASTS, 2000, size=KIB),
    Scenario("casts-64k", "casts, 64 KiB payload", CASTS, 400, size=64 * KIB),
    Scenario("calls-1k", "sequential calls, 1 KiB payload", CALLS, 400, size=KIB),
    Scenario("calls-64k", "sequential calls, 64 KiB payload", CALLS, 200, size=64 * KIB),
    # zmq's raw peer serves from another process, so zmq is judged on these
    Scenario("xproc-casts", "casts, server in another process", CASTS, 2000, remote=True,
             quick_for=("zmq",)),
    Scenario("xproc-calls", "sequential calls, server in another process", CALLS, 400,
             remote=True, quick_for=("zmq",)),
    Scenario("xproc-calls8", "calls from 8 threads, server in another process", CALLS, 800,
             threads=8, remote=True, quick_for=("zmq",)),
    Scenario("xproc-calls-w0", "sequential calls, server in another process, workers=0",
             CALLS, 400, remote=True, topic="xproc-inline"),
)

# messages per repeat: the fast in-process drivers get more, so a repeat is long enough
SCALE = {"memory": 10.0, "zmq": 5.0, "rabbit": 1.0, "qpid": 1.0, "nats": 4.0}
QUICK_FACTOR = 0.7


def selected(driver: str, quick: bool) -> list[Scenario]:
    """The scenarios that run for ``driver`` (memory has no cross-process
    variant; notifications need a driver that carries them)."""
    from benchmarks.suite.notifications import carries_notifications
    notifies = carries_notifications(driver)
    return [s for s in SCENARIOS
            if (s.quick or driver in s.quick_for or not quick)
            and not (s.remote and driver == "memory")
            and (s.kind != NOTIFY or notifies)
            and not (s.otel and not otel.available())]


def count_messages(driver: str, scenario: Scenario, quick: bool) -> int:
    n = scenario.n * SCALE[driver] * (QUICK_FACTOR if quick else 1.0)
    return max(scenario.threads, int(n) // scenario.threads * scenario.threads)


def _trial(target: Any, scenario: Scenario, n: int) -> Callable[[], Measured]:
    if scenario.kind == CASTS:
        return lambda: target.casts(n, scenario.size)
    if scenario.kind == FANOUT:
        return lambda: target.fanout(n)
    if scenario.kind == NOTIFY:
        return lambda: target.notifications(n, scenario.size)
    if scenario.kind == STREAM:
        return lambda: target.stream(n, scenario.size)
    if scenario.kind == ACALLS:
        return lambda: target.acalls(n, scenario.threads, scenario.size)
    if scenario.version and isinstance(target, RpccoreWorkload):
        return lambda: target.calls(n, scenario.threads, scenario.size, scenario.version)
    if scenario.topic and isinstance(target, RemoteServerWorkload):  # peers have one server
        return lambda: target.calls(n, scenario.threads, scenario.size, topic=scenario.topic)
    return lambda: target.calls(n, scenario.threads, scenario.size)


def _peer_fits(peer: Peer, scenario: Scenario) -> tuple[bool, str]:
    """Whether ``peer`` can do ``scenario``, and a note when it does less."""
    if scenario.kind not in peer.supports or scenario.version or scenario.otel:
        return False, ""
    if scenario.kind == CALLS and scenario.threads > 1 and THREADS not in peer.supports:
        return True, f"{peer.name} measured with one thread (it has no threaded variant)"
    return True, ""


def _unit(scenario: Scenario) -> str:
    if scenario.kind == STREAM:
        return "items/s"
    return "calls/s" if scenario.kind in (CALLS, ACALLS) else "msg/s"


class DriverRun:
    """All scenarios of one driver: rpccore, its peers, rows and errors."""

    def __init__(self, driver: str, quick: bool, repeats: int, progress: Progress,
                 log: Callable[[str], None]) -> None:
        self.driver = driver
        self.quick = quick
        self.repeats = repeats
        self.progress = progress
        self.log = log
        self.rows: list[Row] = []
        self.errors: list[str] = []
        self.missing: list[str] = []

    def run(self) -> None:
        todo = selected(self.driver, self.quick)
        factory = CellFactory(self.driver)
        self.progress.show(f"{self.driver}: starting rpccore and peers")
        try:
            local = RpccoreWorkload(factory)
        except Exception as exc:
            self._fail(f"{self.driver}: rpccore could not start", exc)
            for _ in todo:
                self.progress.step(f"{self.driver}: skipped")
            return
        peers, self.missing = start_peers(self.driver, self.log)
        for line in self.missing:
            self.log(f"{self.driver}: {line}")
        extras = _Targets(factory, local)
        try:
            for scenario in todo:
                self.progress.show(f"{self.driver}: {scenario.label}")
                self._run_scenario(scenario, extras, peers)
                self.progress.step(f"{self.driver}: {scenario.label} done")
        finally:
            extras.close()
            for peer in peers:
                try:
                    peer.close()
                except Exception as exc:
                    self.log(f"{self.driver}: closing {peer.name}: {exc}")
            local.close()

    def _run_scenario(self, scenario: Scenario, targets: _Targets, peers: list[Peer]) -> None:
        try:
            target = targets.for_scenario(scenario)
            # the instrumented calls alternate with plain ones, here and now
            self.rows.append(self._measure(scenario, target, peers,
                                           targets.local if scenario.otel else None))
        except NotCarriedHere as exc:  # qpid on RabbitMQ 3.x: no row, no error
            self.log(f"{self.driver}: {scenario.label}: not measured on this broker: {exc}")
        except Exception as exc:
            self._fail(f"{self.driver}: {scenario.label} failed", exc)

    def _fail(self, what: str, exc: Exception) -> None:
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        self.errors.append(f"{what}: {detail}")
        self.log(f"ERROR {what}: {detail}")

    def _measure(self, scenario: Scenario, target: Any, peers: list[Peer],
                 baseline: RpccoreWorkload | None = None) -> Row:
        """``baseline``: rpccore itself, measured as a peer (``calls-otel``)."""
        n = count_messages(self.driver, scenario, self.quick)
        trials = [("rpccore", _trial(target, scenario, n))]
        if baseline is not None:
            trials.append((otel.BASELINE, _trial(baseline, scenario, n)))
        notes = []
        if scenario.kind == STREAM:
            notes.append("items of one rpc.stream (default stream_window), read here; "
                         "judged against this driver's casts")
        for peer in peers:
            fits, note = _peer_fits(peer, scenario)
            if fits:
                trials.append((peer.name, _trial(peer, scenario, n)))
                if note:
                    notes.append(note)
                if scenario.remote and not peer.remote_server:
                    notes.append(f"{peer.name}'s server runs in this process")
                elif peer.remote_server and not scenario.remote:
                    notes.append(f"{peer.name}'s server runs in another process")
        t0 = time.monotonic()
        # rpccore against itself: a ratio near 1 that noise moves most, so
        # two more repeats (the pair is short)
        repeats = self.repeats if baseline is None else max(self.repeats, 5)
        results: dict[str, Result] = interleave(trials, repeats)
        self.log(f"{self.driver}: {scenario.label}: {n} per repeat, "
                 f"{time.monotonic() - t0:.1f} s")
        return Row(self.driver, scenario.key, scenario.label,
                   Figures.from_result("rpccore", results["rpccore"]),
                   [Figures.from_result(name, results[name]) for name, _ in trials[1:]],
                   unit=_unit(scenario), note="; ".join(notes))


class _Targets:
    """What a scenario runs against: the local workload, and, started the
    first time a scenario needs them, a server in another process and an
    instrumented (OpenTelemetry) workload."""

    def __init__(self, factory: CellFactory, local: RpccoreWorkload) -> None:
        self.factory = factory
        self.local = local
        self.remote: RemoteServerWorkload | None = None
        self.instrumented: otel.NoOpTelemetryWorkload | None = None
        self.proc: Any = None

    def for_scenario(self, scenario: Scenario) -> Any:
        if scenario.remote and self.remote is None:
            self.proc = child.start(self.factory.spec())
            self.remote = RemoteServerWorkload(self.factory)
        if scenario.otel and self.instrumented is None:
            self.instrumented = otel.NoOpTelemetryWorkload(self.factory)
        if scenario.otel:
            return self.instrumented
        return self.remote if scenario.remote else self.local

    def close(self) -> None:
        if self.instrumented is not None:
            self.instrumented.close()
        if self.remote is not None:
            self.remote.close()
        if self.proc is not None:
            child.stop(self.proc)
