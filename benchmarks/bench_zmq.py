"""The zmq driver against raw pyzmq on loopback, in one run.

Servers run in a separate process (one for raw pyzmq, one for rpccore), the
clients here. Scenarios, interleaved, median of 3 repeats:

- raw REQ/REP round trips, and raw PUSH/PULL messages/s (counted at the receiver);
- rpccore sequential calls (to a server with worker threads, the default,
  and to one with ``workers=0``), casts/s (counted at the server), calls
  from 8 threads;
- then, in a second set of 3 interleaved repeats (so that the first set
  runs as it always did), casts, rpccore notifications/s (one pool,
  listening in the server process, counted there), calls from 8 threads
  and asyncio calls/s (``rpccore.aio``, 64 in flight, on an event loop in
  a thread of this process), each judged against the casts or 8-thread
  calls of that set.

Targets (issue 4): sequential calls >= 40% of raw REQ/REP; casts >= 20,000/s;
8-thread calls >= 2x sequential calls. Issue 20: notifications >= 0.8x
casts. Issue 21: asyncio calls >= 1x calls from 8 threads.

    python benchmarks/bench_zmq.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import Result, interleave, report, timed_calls  # noqa: E402
from benchmarks.suite.child import stop  # noqa: E402
from rpccore_zmq.protocol import notification_key  # noqa: E402
from rpccore_zmq.testing import free_port, zmq_rpc  # noqa: E402

PAYLOAD = "x" * 100
RAW_BODY = b'{"v":1,"kind":"call","method":"work","args":{"i":1,"payload":"' + b"x" * 100 + b'"}}'
TOPIC = "bench"
INLINE_TOPIC = "bench-inline"
NOTIFY_TOPIC = "bench-notify"


# -- servers (run in a child process) ------------------------------------------

def serve_raw(port: int) -> None:
    """REP on ``port``, PULL on a port of its own, which it prints (the
    counts are reported on REP)."""
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.bind(f"tcp://127.0.0.1:{port}")
    pull = ctx.socket(zmq.PULL)
    pull_port = pull.bind_to_random_port("tcp://127.0.0.1")
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    poller.register(pull, zmq.POLLIN)
    pulled = 0
    print(f"ready {pull_port}", flush=True)
    while True:
        for sock, _ in poller.poll():
            if sock is pull:
                pull.recv()
                pulled += 1
            else:
                msg = rep.recv()
                if msg == b"count":
                    rep.send(str(pulled).encode())
                elif msg == b"quit":
                    rep.send(b"bye")
                    return
                else:
                    rep.send(msg)


class Endpoint:
    """The rpccore server's endpoints."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def work(self, ctx: dict[str, Any], i: int, payload: str) -> int:
        return i

    def note(self, ctx: dict[str, Any], i: int, payload: str) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        """A notification, counted with the casts."""
        self.note(ctx, 0, "")

    def wait_count(self, ctx: dict[str, Any], n: int) -> int:
        """The count once it reaches ``n``, or once it has stopped growing
        for 2 s (casts lost: a client's send queue overflowed)."""
        with self.cond:
            while self.count < n:
                before = self.count
                if not self.cond.wait_for(lambda: self.count >= n, timeout=2.0) \
                        and self.count == before:
                    break
            return self.count

    def cpu(self, ctx: dict[str, Any]) -> dict[str, float]:
        """The server process's CPU time by thread (for --profile)."""
        return thread_cpu()


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by each thread of this process, by name, with
    numbered pool threads (``rpccore-bench-3``) summed under ``-N``, plus the
    whole process (which includes libzmq's own I/O threads)."""
    used: dict[str, float] = {"(whole process)": time.process_time()}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:
            continue  # it has just ended
        name = re.sub(r"-\d+$", "-N", thread.name)
        used[name] = used.get(name, 0.0) + seconds
    return used


def serve_rpccore(port: int) -> None:
    rpc = zmq_rpc(port, cell="bench", zmq_bind_address="127.0.0.1",
                  static_hosts={TOPIC: ["127.0.0.1"]})
    endpoint = Endpoint()
    rpc.serve(rpc.make_destination(TOPIC, host="127.0.0.1"), [endpoint]).start()
    rpc.listener([NOTIFY_TOPIC], [endpoint], pool="bench").start()
    # the same endpoint without worker threads, for quick methods only
    rpc.serve(rpc.make_destination(INLINE_TOPIC, host="127.0.0.1"), [Endpoint()],
              workers=0).start()
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    rpc.close()


def start_server(kind: str, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """The server process, once it is ready, and what it said besides."""
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    said = proc.stdout.readline().split()
    if not said or said[0] != "ready":
        raise RuntimeError(f"{kind} server did not start")
    return proc, said[1:]


# -- trials (this process) --------------------------------------------------------

class Raw:
    def __init__(self, port: int, pull_port: int) -> None:
        self.ctx = zmq.Context()
        self.req = self.ctx.socket(zmq.REQ)
        self.req.connect(f"tcp://127.0.0.1:{port}")
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 0)
        self.push.connect(f"tcp://127.0.0.1:{pull_port}")

    def roundtrips(self, n: int) -> tuple[float, list[float]]:
        latencies = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            self.req.send(RAW_BODY)
            self.req.recv()
            latencies.append(time.perf_counter() - t0)
        return n / (time.perf_counter() - start), latencies

    def pushes(self, n: int) -> tuple[float, list[float]]:
        self.req.send(b"count")
        base = int(self.req.recv())
        start = time.perf_counter()
        for _ in range(n):
            self.push.send(RAW_BODY)
        while True:
            self.req.send(b"count")
            if int(self.req.recv()) >= base + n:
                break
            time.sleep(0.001)
        return n / (time.perf_counter() - start), []


class Rpc:
    def __init__(self, port: int, **options: Any) -> None:
        self.rpc = zmq_rpc(port, cell="bench", static_hosts={
            TOPIC: ["127.0.0.1"], INLINE_TOPIC: ["127.0.0.1"],
            notification_key(NOTIFY_TOPIC): ["127.0.0.1"]}, **options)
        self.notifier = self.rpc.notifier("bench", topics=[NOTIFY_TOPIC])
        self._aio: Any = None
        #: casts the server has counted so far
        self.counted = 0
        self.call(0)  # connect

    def call(self, i: int, topic: str = TOPIC) -> Any:
        return self.rpc.call({}, topic, {"method": "work", "args": {"i": i, "payload": PAYLOAD}},
                             timeout=30)

    def inline_call(self, i: int) -> Any:
        return self.call(i, INLINE_TOPIC)

    def calls(self, n: int, threads: int = 1) -> tuple[float, list[float]]:
        return timed_calls(self.call, n, threads)

    def inline_calls(self, n: int) -> tuple[float, list[float]]:
        return timed_calls(self.inline_call, n, 1)

    def casts(self, n: int) -> tuple[float, list[float]]:
        """Casts/s counted at the server (a cast lost because the send queue
        overflowed is not counted, and said)."""
        start = time.perf_counter()
        for i in range(n):
            self.rpc.cast({}, TOPIC, {"method": "note", "args": {"i": i, "payload": PAYLOAD}},
                          confirm=i == n - 1)
        return self._counted(n, "casts", start)

    def notifications(self, n: int) -> tuple[float, list[float]]:
        """Notifications/s of one topic with one pool, counted at the server."""
        start = time.perf_counter()
        info = self.notifier.info
        for i in range(n):
            info({}, "bench.event", {"i": i, "payload": PAYLOAD}, confirm=i == n - 1)
        return self._counted(n, "notifications", start)

    def _counted(self, n: int, what: str, start: float) -> tuple[float, list[float]]:
        """The rate of ``n`` messages counted at the server. The last one
        was sent with ``confirm=True``: once the server has read them all,
        the count is asked for on another connection (which could otherwise
        overtake them, and wait_count, known to be quick, would hold up
        those read with it on its thread until it gives up)."""
        got = self.rpc.call({}, TOPIC, {"method": "wait_count", "args": {"n": self.counted + n}},
                            timeout=60)
        delivered, self.counted = got - self.counted, got
        if delivered < n:
            print(f"  ({n - delivered} of {n} {what} lost: the send queue overflowed)",
                  flush=True)
        return delivered / (time.perf_counter() - start), []

    def aio_calls(self, n: int, concurrency: int = 64) -> tuple[float, list[float]]:
        """``n`` asyncio calls, ``concurrency`` in flight (rpccore.aio over
        this client, on an event loop in a thread of its own)."""
        if self._aio is None:
            self._aio = AioClient(self.rpc)
        return self._aio.calls(n, concurrency)

    def close(self) -> None:
        if self._aio is not None:
            self._aio.close()
        self.rpc.close()


class AioClient:
    """``rpccore.aio.RPC.from_rpc`` on an event loop running in a thread."""

    def __init__(self, threaded: Any) -> None:
        import rpccore.aio
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> rpccore.aio.RPC:
            return rpccore.aio.RPC.from_rpc(threaded)
        self.rpc = self._run(make())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    def calls(self, n: int, concurrency: int) -> tuple[float, list[float]]:
        latencies: list[float] = []
        message = {"method": "work", "args": {"i": 1, "payload": PAYLOAD}}

        async def worker(k: int) -> None:
            for _ in range(k, n, concurrency):
                t0 = time.perf_counter()
                await self.rpc.call({}, TOPIC, message, timeout=30)
                latencies.append(time.perf_counter() - t0)

        async def run() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            return n / (time.perf_counter() - start)
        return self._run(run()), latencies

    def close(self) -> None:
        self._run(self.rpc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages (CI guard)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile one repeat of each rpccore scenario (cProfile)")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        kind, port = args.serve
        (serve_raw if kind == "raw" else serve_rpccore)(int(port))
        return []
    casts, calls = (5000, 1000) if args.quick else (40000, 6000)
    raw_port, rpc_port = free_port("127.0.0.1"), free_port("127.0.0.1")
    (raw_server, (pull_port,)), (rpc_server, _) = (start_server("raw", raw_port),
                                                   start_server("rpccore", rpc_port))
    servers = [raw_server, rpc_server]
    raw, rpc = Raw(raw_port, int(pull_port)), Rpc(rpc_port)
    try:
        print(f"zmq on loopback, servers in another process, ~200-byte messages, median of 3 "
              f"interleaved repeats ({casts} casts, {calls} calls per repeat)")
        r = interleave([("raw REQ/REP", lambda: raw.roundtrips(calls)),
                        ("raw PUSH/PULL", lambda: raw.pushes(casts)),
                        ("rpccore calls", lambda: rpc.calls(calls)),
                        ("rpccore calls, workers=0", lambda: rpc.inline_calls(calls)),
                        ("rpccore casts", lambda: rpc.casts(casts)),
                        ("rpccore calls, 8 threads", lambda: rpc.calls(calls, 8))])
        # then, apart (so that the figures above are taken as they always
        # were), notifications and asyncio calls beside their own baselines
        r2 = interleave([("rpccore casts", lambda: rpc.casts(casts)),
                         ("rpccore notifications", lambda: rpc.notifications(casts)),
                         ("rpccore calls, 8 threads", lambda: rpc.calls(calls, 8)),
                         ("rpccore asyncio calls", lambda: rpc.aio_calls(calls * 2))])
        target = Result("20,000/s", rates=[20000.0])
        rows = [report("raw pyzmq REQ/REP round trips", r["raw REQ/REP"]),
                report("raw pyzmq PUSH/PULL", r["raw PUSH/PULL"]),
                report("zmq: sequential calls", r["rpccore calls"], r["raw REQ/REP"], 0.40),
                report("zmq: sequential calls, server workers=0",
                       r["rpccore calls, workers=0"], r["raw REQ/REP"], 0.40),
                report("zmq: casts", r["rpccore casts"], target, 1.0),
                report("zmq: calls from 8 threads", r["rpccore calls, 8 threads"],
                       r["rpccore calls"], 2.0),
                report("zmq: notifications", r2["rpccore notifications"], r2["rpccore casts"],
                       0.8),
                report("zmq: asyncio calls, 64 in flight", r2["rpccore asyncio calls"],
                       r2["rpccore calls, 8 threads"], 1.0)]
        if args.profile:
            profile(rpc, casts, calls)
        return rows
    finally:
        raw.req.send(b"quit")
        raw.req.recv()
        raw.ctx.destroy(linger=0)
        rpc.close()
        for proc in servers:
            stop(proc)


def profile(rpc: Rpc, casts: int, calls: int) -> None:
    """CPU per sequential call by thread on both sides, then where the
    calling thread of the client spends its time (cProfile; the I/O threads
    and the server process are not included there: time waiting on them shows
    as lock acquisition or poll)."""
    import cProfile
    import pstats

    def server_cpu() -> dict[str, float]:
        return dict(rpc.rpc.call({}, TOPIC, {"method": "cpu", "args": {}}, timeout=30))

    client0, server0 = thread_cpu(), server_cpu()
    start = time.perf_counter()
    for i in range(calls):
        rpc.call(i)
    elapsed = time.perf_counter() - start
    client1, server1 = thread_cpu(), server_cpu()
    print(f"\n--- CPU per sequential call by thread ({calls / elapsed:,.0f} calls/s) ---")
    for side, before, after in (("client", client0, client1), ("server", server0, server1)):
        for name in sorted(after, key=lambda n: after[n] - before.get(n, 0.0), reverse=True):
            per_call = (after[name] - before.get(name, 0.0)) / calls * 1e6
            if per_call >= 0.5:
                print(f"{side:7s} {name:48s} {per_call:7.1f} us")

    def sequential() -> None:
        for i in range(calls):  # on this thread, so that cProfile sees it
            rpc.call(i)

    trials: list[tuple[str, Callable[[], object]]] = [
        ("sequential calls", sequential), ("casts", lambda: rpc.casts(casts))]
    for name, trial in trials:
        prof = cProfile.Profile()
        prof.enable()
        trial()
        prof.disable()
        print(f"\n--- cProfile, client side, {name} (calling thread) ---")
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
    os._exit(0)
