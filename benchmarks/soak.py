"""Load: 8 client threads making calls for a while against each driver.

Prints, every few seconds, calls done, errors, resident memory, threads, open
file descriptors and the calls still pending, then a verdict: zero errors and
memory that stays flat (no leak of futures, reply queues, sockets or threads).
Not a test: a script whose figures go in the notes.

    python benchmarks/soak.py [--seconds 60] [--drivers memory,rabbit,qpid,zmq]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import threading
import time
from typing import Any

import rpccore
from rpccore.testing import single_cell_rpc

URLS = {
    "memory": ("memory:///soak", {}),
    "rabbit": ("rabbit://guest:guest@127.0.0.1:5672/", {"control_exchange": "soak"}),
    "qpid": ("qpid://guest:guest@127.0.0.1:5672/", {"control_exchange": "soak"}),
    "zmq": ("zmq://", {"zmq_bind_address": "127.0.0.1", "zmq_port": 9531,
                       "matchmaker": "redis",
                       "matchmaker_url": "redis://127.0.0.1:6379/0"}),
}


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Endpoint:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def make_rpc(driver: str) -> rpccore.RPC:
    url, options = URLS[driver]
    return single_cell_rpc(url, **options)


def soak(driver: str, seconds: float, threads: int) -> bool:
    server_rpc, client = make_rpc(driver), make_rpc(driver)
    server_rpc.serve(server_rpc.make_destination("soak", host="127.0.0.1"), [Endpoint()]).start()
    dest = client.make_destination("soak", host="127.0.0.1")
    done = [0] * threads
    errors: list[str] = []
    stop = threading.Event()

    def caller(k: int) -> None:
        while not stop.is_set():
            try:
                if client.call({}, dest, {"method": "add", "args": {"a": k, "b": 1}},
                               timeout=10) != k + 1:
                    errors.append("wrong result")
                done[k] += 1
            except rpccore.RPCError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

    workers = [threading.Thread(target=caller, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    print(f"\n== {driver}: {threads} threads calling for {seconds:.0f} s")
    print(f"{'t (s)':>6} {'calls':>9} {'calls/s':>8} {'errors':>6} {'RSS MiB':>8} "
          f"{'threads':>7} {'fds':>5} {'pending':>7}")
    last_calls, last_t = 0, start
    while (now := time.monotonic()) - start < seconds:
        time.sleep(min(5.0, seconds / 6))
        gc.collect()
        now = time.monotonic()
        total = sum(done)
        rss = rss_kib()
        samples.append((now - start, rss))
        print(f"{now - start:6.0f} {total:9d} {(total - last_calls) / (now - last_t):8.0f} "
              f"{len(errors):6d} {rss / 1024:8.1f} {threading.active_count():7d} "
              f"{open_fds():5d} {len(client.cell().pending_calls):7d}", flush=True)
        last_calls, last_t = total, now
    stop.set()
    for w in workers:
        w.join(15)
    client.close()
    server_rpc.close()
    # Flat memory: the second half of the run grows by less than 10% of the first sample
    # (warm-up allocations come first).
    half = samples[len(samples) // 2:]
    growth = (half[-1][1] - half[0][1]) / max(1, samples[0][1]) if len(half) > 1 else 0.0
    flat = growth < 0.10
    ok = not errors and flat
    print(f"{driver}: {sum(done)} calls, {len(errors)} errors, memory growth over the second "
          f"half {growth * 100:+.1f}% -> {'OK' if ok else 'FAILED'}")
    for line in errors[:5]:
        print("   error:", line)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--drivers", default="memory,rabbit,qpid,zmq")
    args = parser.parse_args(argv)
    results = {d: soak(d, args.seconds, args.threads) for d in args.drivers.split(",")}
    print("\n" + ", ".join(f"{d}: {'OK' if ok else 'FAILED'}" for d, ok in results.items()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
