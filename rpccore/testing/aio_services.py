"""Endpoints the asyncio conformance behaviours serve
(:mod:`rpccore.testing.aio_conformance`): every kind of method, and what
each saw of where it ran."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import rpccore.aio


class AsyncService:
    """Endpoint methods of every kind, remembering where and how they ran."""

    def __init__(self) -> None:
        self.loop_threads: set[int] = set()
        self.plain_threads: set[int] = set()
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0
        self.produced = 0
        self.closed = threading.Event()
        self.finished_sleeps = 0

    async def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        self.loop_threads.add(threading.get_ident())
        await asyncio.sleep(0)
        return a + b

    async def sleep(self, ctx: dict[str, Any], seconds: float) -> str:
        await asyncio.sleep(seconds)
        self.finished_sleeps += 1
        return "slept"

    async def fail(self, ctx: dict[str, Any], text: str) -> None:
        await asyncio.sleep(0)
        raise ValueError(text)

    def plain(self, ctx: dict[str, Any], seconds: float) -> str:
        with self._lock:
            self.plain_threads.add(threading.get_ident())
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(seconds)
        with self._lock:
            self.running -= 1
        return "plain"

    async def count(self, ctx: dict[str, Any], n: int) -> AsyncIterator[int]:
        for i in range(n):
            self.produced = i + 1
            yield i

    async def forever(self, ctx: dict[str, Any], pause: float) -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                self.produced = i + 1
                yield i
                i += 1
                await asyncio.sleep(pause)
        finally:
            self.closed.set()

    async def broken(self, ctx: dict[str, Any]) -> AsyncIterator[int]:
        yield 1
        raise KeyError("broken after one")


class Relay:
    """An async method that calls another server, and what it saw of the trace."""

    def __init__(self, rpc: rpccore.aio.RPC, topic: str) -> None:
        self.rpc = rpc
        self.topic = topic
        self.trace_ids: list[int] = []

    async def relay(self, ctx: dict[str, Any], a: int) -> Any:
        from opentelemetry import trace
        self.trace_ids.append(trace.get_current_span().get_span_context().trace_id)
        return await self.rpc.call({}, self.topic, {"method": "add", "args": {"a": a, "b": 1}},
                                   timeout=10)

    async def fail(self, ctx: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise ValueError("traced failure")
