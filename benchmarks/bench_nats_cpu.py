"""CPU time per message of the NATS server and of this process, for the
nats driver's casts and notifications, in one run.

The nats guard compares notifications (JetStream: stored, delivered,
acknowledged) with plain casts (core NATS: routed) on the same machine.
Rates alone do not say who does the extra work; this reads the CPU time
that the ``nats-server`` process (``/proc/<pid>/stat``, Linux) and this
Python process (client, server and listener, as in ``benchmarks/run.py``)
spend per message, for casts counted at the server and notifications
counted at the listener, interleaved, and prints the medians.

    python benchmarks/bench_nats_cpu.py [--n 20000] [--repeats 3] [--pid PID]

``--pid``: the NATS server's process (default: the first ``nats-server``
found). The machine's other load is in the server's figures only as far as
it slows the server down; both figures are CPU time, not wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite.cells import CellFactory  # noqa: E402
from benchmarks.suite.workload import RpccoreWorkload  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user and system) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def nats_server_pid() -> int:
    found = subprocess.run(["pgrep", "-x", "nats-server"], capture_output=True, text=True)
    pids = found.stdout.split()
    if not pids:
        raise SystemExit("no nats-server process found (give --pid)")
    return int(pids[0])


def trial(run: Any, n: int, pid: int) -> tuple[float, float, float]:
    """``(rate, server µs per message, own µs per message)`` of ``run(n)``."""
    server, own = process_cpu(pid), own_cpu()
    rate = run(n)[0]
    return (rate, 1e6 * (process_cpu(pid) - server) / n, 1e6 * (own_cpu() - own) / n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="messages per trial")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pid", type=int, help="the NATS server's process id")
    args = parser.parse_args()
    pid = args.pid or nats_server_pid()
    workload = RpccoreWorkload(CellFactory("nats"))
    kinds = {"casts": workload.casts, "notifications": workload.notifications}
    seen: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in kinds}
    try:
        for run in kinds.values():  # set-up and warm-up, before any clock
            run(min(2000, args.n))
        for _ in range(args.repeats):
            for kind, run in kinds.items():
                seen[kind].append(trial(run, args.n, pid))
    finally:
        workload.close()
    print(f"nats casts and notifications, CPU per message, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, median of {args.repeats} "
          f"interleaved repeats of {args.n}, {os.cpu_count()} CPUs")
    for kind, trials in seen.items():
        rate, server, own = (statistics.median(t[i] for t in trials) for i in range(3))
        print(f"{kind:14s} {rate:>9,.0f}/s   nats-server {server:6.1f} us CPU   "
              f"this process {own:6.1f} us CPU   (ranges: server "
              f"{min(t[1] for t in trials):.1f}-{max(t[1] for t in trials):.1f}, "
              f"process {min(t[2] for t in trials):.1f}-{max(t[2] for t in trials):.1f})")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
