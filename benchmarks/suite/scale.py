"""Scale: many zmq servers in the redis matchmaker, many rabbit servers.

zmq, 50 then 200 servers: each its own ``RPC`` bound to its own loopback
address (127.0.0.10, .11, ...) on one shared port, registered in the redis
matchmaker (Redis at ``RPCCORE_BENCH_REDIS_URL``) under a key prefix of this
run only, deleted afterwards. Figures: time to start (bind and register)
all servers, matchmaker look-up latency, time for one fanout cast to reach
every server, and resident memory per idle server (RSS growth / servers).

rabbit, 100 servers: each its own ``RPC`` (own connection); time for all to
start, which declares their queues and bindings, and one fanout to all.

These figures have no peer: they are absolute.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
import traceback
from collections.abc import Callable

from benchmarks.suite.cells import RABBIT_URL, REDIS_URL, free_port
from benchmarks.suite.endpoint import Counter, Endpoint
from benchmarks.suite.model import ScaleFigure
from benchmarks.suite.progress import Progress
from rpccore import RPC

ZMQ_COUNTS = (50, 200)
RABBIT_SERVERS = 100
LOOKUPS = 300


def steps(drivers: list[str]) -> int:
    return (len(ZMQ_COUNTS) if "zmq" in drivers else 0) + (1 if "rabbit" in drivers else 0)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fanout_times(client: RPC, counter: Counter, servers: int, repeats: int = 3) -> list[float]:
    """Seconds for each of ``1 + repeats`` fanout casts to reach every server (first: cold)."""
    dest = client.make_destination("scale", fanout=True)
    times = []
    for k in range(1, repeats + 2):
        t0 = time.perf_counter()
        client.cast({}, dest, {"method": "note", "args": {"i": k, "payload": ""}})
        counter.wait_for(k * servers, timeout=60)
        times.append(time.perf_counter() - t0)
    return times


def zmq_scale(servers: int) -> list[ScaleFigure]:
    from rpccore_zmq.testing import zmq_rpc

    prefix = f"rpccore.bench.{os.urandom(4).hex()}"
    options = {"matchmaker": "redis", "matchmaker_url": REDIS_URL,
               "matchmaker_key_prefix": prefix}
    port, cell = free_port(), f"scale-{os.urandom(3).hex()}"
    counter = Counter()
    rpcs: list[RPC] = []
    client = zmq_rpc(port, cell=cell, **options)
    warm = zmq_rpc(port, cell=cell, zmq_bind_address="127.0.0.9", **options)
    warm.serve("scale-warm-up", [Endpoint()], workers=1).start()
    warm.close()  # first-use allocations (imports, caches) are not counted per server
    try:
        gc.collect()
        before = rss_bytes()
        t0 = time.perf_counter()
        for i in range(servers):
            rpc = zmq_rpc(port, cell=cell, zmq_bind_address=f"127.0.0.{10 + i}", **options)
            rpcs.append(rpc)
            rpc.serve("scale", [Endpoint(counter)], workers=1).start()
        started = time.perf_counter() - t0
        matchmaker = client.cell().load_matchmaker("redis")
        try:
            found = matchmaker.lookup("scale")
            if len(found) != servers:
                raise RuntimeError(f"matchmaker knows {len(found)} of {servers} servers")
            lookups = []
            for _ in range(LOOKUPS):
                t1 = time.perf_counter()
                matchmaker.lookup("scale")
                lookups.append(time.perf_counter() - t1)
        finally:
            matchmaker.close()
        time.sleep(1.0)  # idle: let every server settle before measuring memory
        gc.collect()
        per_server = (rss_bytes() - before) / servers
        fanouts = _fanout_times(client, counter, servers)
    finally:
        for rpc in rpcs:
            rpc.close()
        client.close()
        _delete_keys(prefix)
    lookups.sort()
    return [
        ScaleFigure("zmq", servers, "start and register all servers", started, "s"),
        ScaleFigure("zmq", servers, "per server start and register", started / servers * 1e3,
                    "ms"),
        ScaleFigure("zmq", servers, "matchmaker look-up p50", lookups[len(lookups) // 2] * 1e3,
                    "ms", f"redis, {servers} hosts per look-up"),
        ScaleFigure("zmq", servers, "matchmaker look-up p99",
                    lookups[int(len(lookups) * 0.99)] * 1e3, "ms"),
        ScaleFigure("zmq", servers, "fanout to all, first (connects)", fanouts[0] * 1e3, "ms"),
        ScaleFigure("zmq", servers, "fanout to all, median of next 3",
                    statistics.median(fanouts[1:]) * 1e3, "ms"),
        ScaleFigure("zmq", servers, "memory per idle server", per_server / 1024, "KiB",
                    "RSS growth / servers; each server is its own RPC object"),
    ]


def _delete_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def rabbit_scale(servers: int = RABBIT_SERVERS) -> list[ScaleFigure]:
    from benchmarks.suite.cells import CellFactory

    factory = CellFactory("rabbit")
    counter = Counter()
    rpcs: list[RPC] = []
    client = factory.rpc()
    try:
        t0 = time.perf_counter()
        for i in range(servers):
            rpc = factory.rpc()
            rpcs.append(rpc)
            rpc.serve(rpc.make_destination("scale", host=f"server-{i}"), [Endpoint(counter)],
                      workers=1).start()
        started = time.perf_counter() - t0
        fanouts = _fanout_times(client, counter, servers)
    finally:
        for rpc in rpcs:
            rpc.close()
        client.close()
    return [
        ScaleFigure("rabbit", servers, "start and declare all servers", started, "s",
                    f"each its own connection; {RABBIT_URL.split('@')[-1]}"),
        ScaleFigure("rabbit", servers, "per server start and declare", started / servers * 1e3,
                    "ms"),
        ScaleFigure("rabbit", servers, "fanout to all, first", fanouts[0] * 1e3, "ms"),
        ScaleFigure("rabbit", servers, "fanout to all, median of next 3",
                    statistics.median(fanouts[1:]) * 1e3, "ms"),
    ]


def run(drivers: list[str], progress: Progress,
        log: Callable[[str], None]) -> tuple[list[ScaleFigure], list[str]]:
    """The scale scenarios of ``drivers``; figures and error lines."""
    jobs: list[tuple[str, Callable[[], list[ScaleFigure]]]] = []
    if "zmq" in drivers:
        jobs += [(f"zmq scale, {n} servers", lambda n=n: zmq_scale(n))  # type: ignore[misc]
                 for n in ZMQ_COUNTS]
    if "rabbit" in drivers:
        jobs.append((f"rabbit scale, {RABBIT_SERVERS} servers", rabbit_scale))
    figures: list[ScaleFigure] = []
    errors: list[str] = []
    for label, job in jobs:
        progress.show(label)
        t0 = time.monotonic()
        try:
            figures += job()
            log(f"{label}: {time.monotonic() - t0:.1f} s")
        except Exception as exc:
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            errors.append(f"{label} failed: {detail}")
            log(f"ERROR {label} failed: {detail}")
        progress.step(f"{label} done")
    return figures, errors
