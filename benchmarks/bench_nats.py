"""The nats driver against raw nats-py, on the machine's NATS, in one run.

Same server, same run, interleaved, median of the repeats, 100-byte
arguments:

- raw request/reply: one asyncio task awaiting ``request()`` after
  ``request()`` against a responder on a second connection of the same loop
  (nats-py's own shared-inbox requests), p50/p99 latency too;
- raw publish+subscribe: one task publishes N messages, the rate counts until
  the subscriber (second connection) has all of them;
- rpccore sequential calls, casts (counted at the server), calls from 8
  threads, with client and server ``RPC`` objects in this process.

Targets (issue 24): sequential calls >= 0.5x raw request/reply; casts >= 0.5x
raw publish+subscribe; calls from 8 threads >= 2x sequential calls.

    python benchmarks/bench_nats.py [--url nats://127.0.0.1:4222] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import Measured, interleave, report  # noqa: E402

PAYLOAD = "x" * 100
NATS_URL = os.environ.get("RPCCORE_BENCH_NATS_URL", "nats://127.0.0.1:4222")


def _body(size: int) -> bytes:
    # what rpccore's envelope carries, near enough: a JSON request
    return (b'{"v":1,"kind":"call","method":"work","args":{"i":1,"payload":"'
            + b"x" * size + b'"}}')


class RawNats:
    """nats-py alone: an asyncio loop on a thread, a requesting connection
    and a responding one (echo for requests, a counter for casts)."""

    def __init__(self, url: str = NATS_URL) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="raw-nats")
        self.thread.start()
        self.subject = f"raw-bench.{os.urandom(4).hex()}"
        self._received = 0
        self._wanted = 0
        self._done: asyncio.Event | None = None
        self._run(self._setup())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(300)

    async def _setup(self) -> None:
        import nats

        self.requester = await nats.connect(self.url)
        self.responder = await nats.connect(self.url)
        self._done = asyncio.Event()
        responder = self.responder

        async def echo(msg: Any) -> None:
            await responder.publish(msg.reply, msg.data)

        async def count(msg: Any) -> None:
            self._received += 1
            if self._received >= self._wanted and self._done is not None:
                self._done.set()

        await responder.subscribe(self.subject + ".call", queue="q", cb=echo)
        await responder.subscribe(self.subject + ".cast", cb=count)
        await responder.flush()
        await self.requester.request(self.subject + ".call", b"warm", timeout=10)

    async def _roundtrips(self, n: int, body: bytes) -> Measured:
        request = self.requester.request
        subject = self.subject + ".call"
        latencies = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            await request(subject, body, timeout=30)
            latencies.append(time.perf_counter() - t0)
        return n / (time.perf_counter() - start), latencies

    async def _publishes(self, n: int, body: bytes) -> Measured:
        assert self._done is not None
        self._wanted = self._received + n
        self._done.clear()
        publish = self.requester.publish
        subject = self.subject + ".cast"
        start = time.perf_counter()
        for _ in range(n):
            await publish(subject, body)
        await asyncio.wait_for(self._done.wait(), 120)
        return n / (time.perf_counter() - start), []

    def roundtrips(self, n: int, size: int = 100) -> Measured:
        return self._run(self._roundtrips(n, _body(size)))  # type: ignore[no-any-return]

    def publishes(self, n: int, size: int = 100) -> Measured:
        return self._run(self._publishes(n, _body(size)))  # type: ignore[no-any-return]

    def close(self) -> None:
        async def close() -> None:
            await self.requester.close()
            await self.responder.close()

        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=NATS_URL)
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["RPCCORE_BENCH_NATS_URL"] = args.url

    from benchmarks.suite.cells import CellFactory
    from benchmarks.suite.workload import RpccoreWorkload

    scale = 0.3 if args.quick else 1.0
    calls, casts = int(2000 * scale), int(20000 * scale)
    raw = RawNats(args.url)
    rpccore = RpccoreWorkload(CellFactory("nats"))
    try:
        results = interleave([
            ("raw nats-py request/reply", lambda: raw.roundtrips(calls)),
            ("rpccore sequential calls", lambda: rpccore.calls(calls)),
            ("rpccore calls from 8 threads", lambda: rpccore.calls(calls * 2, threads=8)),
            ("raw nats-py publish+subscribe", lambda: raw.publishes(casts)),
            ("rpccore casts", lambda: rpccore.casts(casts)),
        ], max(3, args.repeats))
    finally:
        rpccore.close()
        raw.close()
    print(f"nats driver, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"median of {max(3, args.repeats)} interleaved repeats, {os.cpu_count()} CPUs")
    report("raw nats-py request/reply", results["raw nats-py request/reply"])
    report("rpccore sequential calls", results["rpccore sequential calls"],
           results["raw nats-py request/reply"], 0.5)
    report("rpccore calls from 8 threads", results["rpccore calls from 8 threads"],
           results["rpccore sequential calls"], 2.0)
    report("raw nats-py publish+subscribe", results["raw nats-py publish+subscribe"])
    report("rpccore casts", results["rpccore casts"],
           results["raw nats-py publish+subscribe"], 0.5)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
