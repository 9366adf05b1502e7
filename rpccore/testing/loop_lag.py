"""Is an event loop free? A ticker's lag, and driver calls made on the loop's
thread (for tests of asyncio code: :mod:`rpccore.testing.aio_conformance`,
and applications' own)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import Any

import rpccore.aio

#: what the loop-lag checks allow (docs/asyncio.rst, "The event loop stays free")
MAX_LAG = 0.050
#: calls in flight at once while the loop is measured
CONCURRENT = 1000


class LoopLag:
    """Measures how late a 10 ms ticker runs on the current loop, in an
    ``async with`` block.

    :ivar worst: the longest delay seen (s)
    :ivar worst_own: the longest delay less the time the loop's thread
        waited for a CPU meanwhile (Linux run-queue time): what the process
        itself caused, not other processes on a shared machine (a broker
        booting beside it, say). Time the loop waited for the GIL counts as
        its own. Equal to ``worst`` where the kernel does not say.
    :ivar late: ``(time.monotonic(), delay, own delay)`` of every tick late
        by over 20 ms
    """

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.worst = 0.0
        self.worst_own = 0.0
        self.ticks = 0
        self.late: list[tuple[float, float, float]] = []
        self.gc_worst = 0.0
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.period
            queued = _run_queue_seconds()
            await asyncio.sleep(self.period)
            lag = loop.time() - due
            own = max(0.0, lag - (_run_queue_seconds() - queued))
            self.worst = max(self.worst, lag)
            self.worst_own = max(self.worst_own, own)
            self.ticks += 1
            if lag > 0.020:
                self.late.append((time.monotonic(), lag, own))

    async def __aenter__(self) -> LoopLag:
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """Times the garbage collector's passes (a full one of a large heap
        holds every thread up), for :meth:`report`."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info.get("generation") == 2:
            self.gc_worst = max(self.gc_worst, time.perf_counter() - self._gc_started)

    def report(self) -> str:
        """What was measured, for an assertion's message."""
        return (f"worst {self.worst * 1e3:.0f} ms, {self.worst_own * 1e3:.0f} ms of it the "
                f"process's own, over {self.ticks} ticks; longest full garbage collection "
                f"{self.gc_worst * 1e3:.0f} ms")


def _run_queue_seconds() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU
    (the second field of Linux's schedstat); 0 where there is none."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def watch_drivers(rpcs: list[Any], loop_thread: int) -> list[str]:
    """Record every driver method that may block (``send``, ``subscribe``,
    ``close``; not ``send_nowait``, which is meant for the loop) of the
    cells of ``rpcs`` (asyncio ``RPC`` objects: all their cells; servers:
    theirs) that runs on the thread ``loop_thread``; returns the list it fills."""
    on_loop: list[str] = []
    cells = [cell for rpc in rpcs for cell in (
        [rpc.cell] if isinstance(rpc, rpccore.aio.Server)
        else [rpc.threaded.cell(name) for name in rpc.cell_names])]
    drivers = {id(driver): driver for driver in (cell.driver() for cell in cells)}
    for driver in drivers.values():
        for name in ("send", "subscribe", "close"):
            method = getattr(driver, name)

            def watched(*args: Any, _method: Any = method, _name: str = name,
                        **kwargs: Any) -> Any:
                if threading.get_ident() == loop_thread:
                    on_loop.append(_name)
                return _method(*args, **kwargs)
            setattr(driver, name, watched)
    return on_loop
