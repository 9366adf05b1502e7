"""The memory driver against a bare queue-and-thread baseline, in one run.

The bare baseline does the same work with no RPC layer: JSON encoding handed
through a plain queue to a worker thread and, for calls, back through a
future. Targets (issue 2): casts >= 25% of the bare one-way rate, sequential
calls >= 60% of the bare round-trip rate.

    python benchmarks/bench_memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import interleave, report, timed_calls  # noqa: E402
from rpccore.testing import memory_rpc  # noqa: E402

PAYLOAD = "x" * 100


def bare_oneway(n: int) -> tuple[float, list[float]]:
    q: queue.Queue[bytes | None] = queue.Queue()

    def worker() -> None:
        while (item := q.get()) is not None:
            json.loads(item)

    thread = threading.Thread(target=worker)
    thread.start()
    start = time.perf_counter()
    for i in range(n):
        q.put(json.dumps({"method": "work", "args": {"i": i, "payload": PAYLOAD}}).encode())
    q.put(None)
    thread.join()
    return n / (time.perf_counter() - start), []


def bare_roundtrip(n: int) -> tuple[float, list[float]]:
    q: queue.Queue[tuple[bytes, Future[bytes]] | None] = queue.Queue()

    def worker() -> None:
        while (item := q.get()) is not None:
            body, fut = item
            request = json.loads(body)
            fut.set_result(json.dumps({"result": request["args"]["i"]}).encode())

    thread = threading.Thread(target=worker)
    thread.start()
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        fut: Future[bytes] = Future()
        q.put((json.dumps({"method": "work", "args": {"i": i, "payload": PAYLOAD}}).encode(), fut))
        json.loads(fut.result())
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    q.put(None)
    thread.join()
    return n / elapsed, latencies


class Endpoint:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def work(self, ctx: dict[str, Any], i: int, payload: str) -> int:
        with self.lock:
            self.count += 1
            if self.count == self.target:
                self.done.set()
        return i


def rpccore_casts(n: int) -> tuple[float, list[float]]:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        endpoint.target = n
        rpc.serve("bench", [endpoint]).start()
        start = time.perf_counter()
        for i in range(n):
            rpc.cast({}, "bench", {"method": "work", "args": {"i": i, "payload": PAYLOAD}})
        endpoint.done.wait(60)
        return n / (time.perf_counter() - start), []


def rpccore_calls(n: int, threads: int = 1) -> tuple[float, list[float]]:
    with memory_rpc() as rpc:
        rpc.serve("bench", [Endpoint()]).start()
        return timed_calls(lambda i: rpc.call(
            {}, "bench", {"method": "work", "args": {"i": i, "payload": PAYLOAD}}), n, threads)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (CI guard)")
    args = parser.parse_args(argv)
    casts, calls = (5000, 1500) if args.quick else (30000, 8000)
    print(f"memory driver, 100-byte args, median of 3 interleaved repeats "
          f"({casts} casts, {calls} calls per repeat)")
    r = interleave([("bare one-way", lambda: bare_oneway(casts)),
                    ("rpccore casts", lambda: rpccore_casts(casts)),
                    ("bare round trip", lambda: bare_roundtrip(calls)),
                    ("rpccore calls", lambda: rpccore_calls(calls)),
                    ("rpccore calls, 8 threads", lambda: rpccore_calls(calls, 8))])
    rows = [report("bare one-way (queue + thread)", r["bare one-way"]),
            report("memory: casts, 1 thread", r["rpccore casts"], r["bare one-way"], 0.25),
            report("bare round trip (queue + future)", r["bare round trip"]),
            report("memory: sequential calls", r["rpccore calls"], r["bare round trip"], 0.60),
            report("memory: calls from 8 threads", r["rpccore calls, 8 threads"],
                   r["bare round trip"])]
    return rows


if __name__ == "__main__":
    main()
