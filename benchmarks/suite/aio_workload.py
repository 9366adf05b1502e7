"""asyncio calls: rpccore.aio and aio-pika's RPC pattern, on one event loop
that runs in a thread of its own (the suite's trials are plain functions).

Each trial runs ``concurrency`` tasks on the loop, each making calls one
after another, ``n`` in all: that many calls are in flight at any time.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from benchmarks.measure import Measured
from benchmarks.suite.cells import RABBIT_URL

T = TypeVar("T")
ACALLS = "acalls"


class LoopThread:
    """An event loop running in a daemon thread; :meth:`run` waits for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="bench-event-loop")
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


async def concurrent_calls(call: Callable[[int], Awaitable[Any]], n: int,
                           concurrency: int) -> Measured:
    """Rate and latencies (seconds) of ``n`` calls, ``concurrency`` at a time."""
    latencies: list[float] = []

    async def worker(k: int) -> None:
        for i in range(k, n, concurrency):
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return n / (time.perf_counter() - start), latencies


class AioRpccore:
    """rpccore.aio over a threaded client ``RPC`` (same cell, same server)."""

    def __init__(self, threaded: Any) -> None:
        import rpccore.aio
        self.loop = LoopThread()

        async def make() -> rpccore.aio.RPC:
            return rpccore.aio.RPC.from_rpc(threaded)
        self.rpc = self.loop.run(make())

    def calls(self, n: int, concurrency: int, size: int, topic: str = "bench") -> Measured:
        payload = "x" * size

        def one(i: int) -> Awaitable[Any]:
            return self.rpc.call({}, topic, {"method": "work", "args": {"i": i,
                                                                        "payload": payload}},
                                 timeout=60)
        return self.loop.run(concurrent_calls(one, n, concurrency))

    def close(self) -> None:
        self.loop.run(self.rpc.close())
        self.loop.close()


class AioPikaRPC:
    """aio-pika's RPC pattern (``aio_pika.patterns.JsonRPC``: JSON, publisher
    confirms, a reply queue per client), server and client on one loop."""

    name = "aio-pika"

    def __init__(self) -> None:
        self.loop = LoopThread()
        self.method = f"bench-aio-pika-{os.urandom(4).hex()}"
        self.loop.run(self._start())

    async def _start(self) -> None:
        import aio_pika
        from aio_pika.patterns import JsonRPC

        url = RABBIT_URL.replace("rabbit://", "amqp://", 1)
        self.server_conn = await aio_pika.connect(url)
        self.client_conn = await aio_pika.connect(url)
        server = await JsonRPC.create(await self.server_conn.channel())

        async def work(*, i: int, payload: str) -> int:
            return i
        await server.register(self.method, work, auto_delete=True)
        self.client = await JsonRPC.create(await self.client_conn.channel())
        await self.client.call(self.method, kwargs={"i": 0, "payload": ""})

    def calls(self, n: int, concurrency: int, size: int) -> Measured:
        payload = "x" * size

        def one(i: int) -> Awaitable[Any]:
            return self.client.call(self.method, kwargs={"i": i, "payload": payload})
        return self.loop.run(concurrent_calls(one, n, concurrency))

    def close(self) -> None:
        async def stop() -> None:
            await self.client_conn.close()
            await self.server_conn.close()
        try:
            self.loop.run(stop(), timeout=30)
        finally:
            self.loop.close()


def aio_pika_version() -> str | None:
    """The installed aio-pika version, or ``None`` when it cannot be imported."""
    try:
        from importlib.metadata import version

        import aio_pika  # noqa: F401
        return version("aio-pika")
    except Exception:
        return None
