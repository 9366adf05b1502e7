"""Behaviours of DESIGN §11 (asyncio) every driver must show (pytest with
pytest-asyncio): many concurrent calls, asyncio and threaded ``RPC`` objects
talking to each other, cancelling calls and streams, async endpoints, and
an event loop that is never held up.

Mixed into :class:`rpccore.testing.driver_conformance.DriverConformance`,
whose helpers (``rpc``, ``topic``, ``hosts``, ``patience``,
``detects_undeliverable``) it uses: the asyncio ``RPC`` objects of a test
are :meth:`rpccore.aio.RPC.from_rpc` over the driver's ``make_rpc``.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

import rpccore.aio
from rpccore.errors import InvalidDestination, RemoteError, Timeout, Undeliverable

if TYPE_CHECKING:
    from rpccore.rpc import RPC

#: what the loop-lag checks allow (DESIGN §11: no driver I/O on the loop)
MAX_LAG = 0.050
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
    """Record every driver method (``send``, ``subscribe``, ``close``) of
    the cells of ``rpcs`` (asyncio ``RPC`` objects: all their cells; servers:
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


class AioConformance:
    """asyncio on the driver under test."""

    hosts: tuple[str, ...]
    patience: float
    detects_undeliverable: bool

    if TYPE_CHECKING:
        def rpc(self, host: str | None = None, **options: Any) -> RPC: ...

        @staticmethod
        def topic(label: str = "") -> str: ...

    @pytest_asyncio.fixture
    async def aio(self) -> AsyncIterator[Callable[..., rpccore.aio.RPC]]:
        """A factory of asyncio ``RPC`` objects on the driver, closed after the test."""
        made: list[rpccore.aio.RPC] = []

        def make(host: str | None = None, **options: Any) -> rpccore.aio.RPC:
            rpc = rpccore.aio.RPC.from_rpc(self.rpc(host, **options))
            made.append(rpc)
            return rpc

        yield make
        for rpc in reversed(made):
            await rpc.close()

    async def _aio_serve(self, aio: Callable[..., rpccore.aio.RPC], topic: str,
                         service: object, host: str | None = None,
                         workers: int | None = None) -> rpccore.aio.Server:
        host = host or self.hosts[0]
        rpc = aio(host)
        return await rpc.serve(rpc.make_destination(topic, host=host), [service],
                               workers=workers).start()

    # -- many calls, a free loop ----------------------------------------------

    @pytest.mark.asyncio
    async def test_aio_a_thousand_concurrent_calls_leave_the_loop_free(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        # Two measures of a free loop: no driver method ever runs on its
        # thread (exact), and a 10 ms ticker is never late by MAX_LAG while
        # a thousand calls are in flight, less the time other processes held
        # the CPU (LoopLag.worst_own). The calls start a hundred per loop
        # iteration (the ticker may run between); the test session's own
        # heap is frozen (gc.freeze) so that a full garbage collection of
        # hundreds of tests' objects is not counted. The machine may be
        # shared: a burst whose ticker was late anyway is measured once more
        # (a loop blocked by I/O on it is late every time).
        topic = self.topic("aio-many")
        service = AsyncService()
        server = await self._aio_serve(aio, topic, service)
        client = aio()
        pending = client.threaded.cell().pending_calls
        on_loop = watch_drivers([client, server], threading.get_ident())
        expected = [i + 1 for i in range(CONCURRENT)]

        async def burst() -> int:
            calls: list[asyncio.Task[Any]] = []
            peak = 0
            for first in range(0, CONCURRENT, 100):
                calls += [asyncio.create_task(client.call(
                    {}, topic, {"method": "add", "args": {"a": i, "b": 1}},
                    timeout=self.patience * 3)) for i in range(first, first + 100)]
                await asyncio.sleep(0)
                peak = max(peak, len(pending))
            assert await asyncio.gather(*calls) == expected
            return peak

        await burst()  # the first one grows the pools of threads
        worst: list[float] = []
        reports: list[str] = []
        gc.collect()
        gc.freeze()
        try:
            while len(worst) < 2 and (not worst or worst[-1] >= MAX_LAG):
                async with LoopLag() as lag:
                    peak = await burst()
                assert lag.ticks > 0
                worst.append(lag.worst_own)
                reports.append(f"{lag.report()}; {peak} calls in flight at most")
        finally:
            gc.unfreeze()
        assert peak >= CONCURRENT // 2, f"only {peak} calls were in flight at once"
        assert min(worst) < MAX_LAG, f"the loop was held up: {'; '.join(reports)}"
        assert on_loop == [], f"driver methods ran on the loop's thread: {on_loop[:5]}"
        stats = client.stats()[client.default_cell]
        assert stats["timed_out"] == 0 and stats["late_replies"] == 0, stats

    # -- asyncio and threaded objects together ---------------------------------

    @pytest.mark.asyncio
    async def test_aio_and_threaded_rpc_objects_talk_to_each_other(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        from rpccore.testing.long_calls_conformance import Producer
        topic_threaded, topic_aio = self.topic("threaded-side"), self.topic("aio-side")
        threaded_server = self.rpc(self.hosts[0])
        producer = Producer()
        threaded_server.serve(threaded_server.make_destination(topic_threaded,
                                                               host=self.hosts[0]),
                              [producer]).start()
        service = AsyncService()
        await self._aio_serve(aio, topic_aio, service, self.hosts[1])
        client = aio()
        # asyncio caller, threaded server
        assert [x async for x in client.stream({}, topic_threaded,
                                               {"method": "count", "args": {"n": 5}},
                                               timeout=self.patience)] == list(range(5))
        assert await client.call({}, topic_threaded, {"method": "slow", "args": {"seconds": 0}},
                                 timeout=self.patience) == "done"
        # threaded caller, asyncio server (from a thread: never block the loop)
        threaded = self.rpc()

        def threaded_calls() -> tuple[Any, ...]:
            return (threaded.call({}, topic_aio, {"method": "add", "args": {"a": 2, "b": 3}},
                                  timeout=self.patience),
                    list(threaded.stream({}, topic_aio, {"method": "count", "args": {"n": 4}},
                                         timeout=self.patience)),
                    threaded.gather({}, topic_aio, {"method": "add", "args": {"a": 1, "b": 1}},
                                    timeout=1.0))
        added, items, gathered = await asyncio.to_thread(threaded_calls)
        assert (added, items, gathered) == (5, [0, 1, 2, 3], [(self.hosts[1], 2)])
        await client.cast({}, topic_aio, {"method": "sleep", "args": {"seconds": 0}})
        deadline = time.monotonic() + self.patience
        while service.finished_sleeps < 1:
            assert time.monotonic() < deadline, "the asyncio server never ran the cast"
            await asyncio.sleep(0.02)

    # -- cancelling -----------------------------------------------------------

    @pytest.mark.asyncio
    async def test_aio_cancelling_a_call_abandons_it(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        topic = self.topic("aio-cancel")
        service = AsyncService()
        await self._aio_serve(aio, topic, service)
        client = aio()
        cell = client.threaded.cell()
        slow = {"method": "sleep", "args": {"seconds": 0.4}}
        task = asyncio.create_task(client.call({}, topic, slow, timeout=self.patience))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(cell.pending_calls) == 0
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.15):  # works like timeout=
                await client.call({}, topic, slow, timeout=self.patience)
        assert time.monotonic() - start < 0.4
        assert len(cell.pending_calls) == 0
        deadline = time.monotonic() + self.patience
        while client.stats()[client.default_cell]["late_replies"] < 2:
            assert time.monotonic() < deadline, client.stats()
            await asyncio.sleep(0.05)
        assert client.stats()[client.default_cell]["cancelled"] == 2
        # the caller is unharmed
        assert await client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}},
                                 timeout=self.patience) == 2
        with pytest.raises(Timeout):
            await client.call({}, topic, slow, timeout=0.1)

    @pytest.mark.asyncio
    async def test_aio_cancelling_a_stream_stops_the_servers_generator(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        topic = self.topic("aio-stream-cancel")
        service = AsyncService()
        await self._aio_serve(aio, topic, service)
        client = aio(stream_window=4)
        got: list[int] = []

        async def read() -> None:
            async for item in client.stream({}, topic, {"method": "forever",
                                                        "args": {"pause": 0.01}},
                                            timeout=self.patience):
                got.append(item)

        task = asyncio.create_task(read())
        deadline = time.monotonic() + self.patience
        while len(got) < 5:
            assert not task.done(), task.result()  # (raises what the reader raised)
            assert time.monotonic() < deadline, f"only {got} came"
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(service.closed.wait, self.patience), \
            "the server's async generator went on"
        # one that awaits something that never comes is stopped as well
        service.closed.clear()
        reader = client.stream({}, topic, {"method": "forever", "args": {"pause": 3600}},
                               timeout=self.patience)
        assert await reader.__anext__() == 0
        await reader.aclose()
        assert await asyncio.to_thread(service.closed.wait, self.patience)

    # -- async endpoints ------------------------------------------------------

    @pytest.mark.asyncio
    async def test_aio_async_methods_run_on_the_loop_plain_ones_on_bounded_workers(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        topic = self.topic("aio-endpoints")
        service = AsyncService()
        await self._aio_serve(aio, topic, service, workers=2)
        client = aio()
        assert await client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                                 timeout=self.patience) == 3
        assert service.loop_threads == {threading.get_ident()}
        plain = {"method": "plain", "args": {"seconds": 0.1}}
        sleeps = {"method": "sleep", "args": {"seconds": 0.3}}
        start = time.monotonic()
        results = await asyncio.gather(*[client.call({}, topic, plain, timeout=self.patience)
                                         for _ in range(6)],
                                       *[client.call({}, topic, sleeps, timeout=self.patience)
                                         for _ in range(50)])
        assert results == ["plain"] * 6 + ["slept"] * 50
        # fifty 0.3 s sleeps at once on the loop; six 0.1 s plain calls two at a time
        assert time.monotonic() - start < 2.0
        assert service.most_running == 2
        assert threading.get_ident() not in service.plain_threads
        with pytest.raises(RemoteError) as err:
            await client.call({}, topic, {"method": "fail", "args": {"text": "async boom"}},
                              timeout=self.patience)
        assert (err.value.exc_type, err.value.value) == ("ValueError", "async boom")
        assert "async boom" in err.value.traceback
        with pytest.raises(RemoteError) as err:
            await client.call({}, topic, {"method": "add", "args": {"a": 1}},
                              timeout=self.patience)
        assert err.value.exc_type == "rpccore.InvalidArguments"

    @pytest.mark.asyncio
    async def test_aio_async_generators_stream_under_credit(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        topic = self.topic("aio-agen")
        service = AsyncService()
        await self._aio_serve(aio, topic, service)
        client = aio(stream_window=8)
        reader = client.stream({}, topic, {"method": "count", "args": {"n": 100}},
                               timeout=self.patience)
        first = [await reader.__anext__() for _ in range(3)]
        await asyncio.sleep(0.3)  # a server without flow control would run to the end
        assert service.produced <= 3 + 8 + 1, service.produced
        assert first + [x async for x in reader] == list(range(100))
        assert await client.call({}, topic, {"method": "count", "args": {"n": 3}},
                                 timeout=self.patience) == [0, 1, 2]
        got = []
        with pytest.raises(RemoteError) as err:
            async for item in client.stream({}, topic, {"method": "broken", "args": {}},
                                            timeout=self.patience):
                got.append(item)
        assert got == [1] and err.value.exc_type == "KeyError"

    # -- interceptors and tracing --------------------------------------------

    @pytest.mark.asyncio
    async def test_aio_calls_and_async_methods_are_traced_like_threaded_ones(
            self, aio: Callable[..., rpccore.aio.RPC], caplog: pytest.LogCaptureFixture) -> None:
        from opentelemetry import trace

        from rpccore.testing.telemetry import sdk_telemetry
        telemetry = sdk_telemetry()
        topic, inner = self.topic("aio-trace"), self.topic("aio-trace-inner")
        telemetry.watched.update((topic, inner))
        try:
            server_rpc = aio(self.hosts[0])
            relay = Relay(server_rpc, inner)
            await server_rpc.serve(server_rpc.make_destination(topic, host=self.hosts[0]),
                                   [relay]).start()
            await self._aio_serve(aio, inner, AsyncService(), self.hosts[1])
            client = aio()
            with trace.get_tracer("conformance").start_as_current_span("application") as outer:
                assert await client.call({}, topic, {"method": "relay", "args": {"a": 2}},
                                         timeout=self.patience) == 3
                with pytest.raises(RemoteError):
                    await client.call({}, topic, {"method": "fail", "args": {}},
                                      timeout=self.patience)
            spans = await asyncio.to_thread(telemetry.wait_spans, topic, 4, self.patience)
            inner_spans = await asyncio.to_thread(telemetry.wait_spans, inner, 2, self.patience)
        finally:
            telemetry.watched.difference_update((topic, inner))
        calls = {(s.kind.name, s.attributes["rpc.method"]): s for s in spans}  # type: ignore[index]
        client_span, server_span = calls[("CLIENT", "relay")], calls[("SERVER", "relay")]
        trace_id = outer.get_span_context().trace_id
        assert {s.context.trace_id for s in spans + inner_spans} == {trace_id}
        assert client_span.parent.span_id == outer.get_span_context().span_id  # type: ignore[union-attr]
        assert server_span.parent.span_id == client_span.context.span_id  # type: ignore[union-attr]
        # the async method ran with its server span current: its own call is a child
        nested = {s.kind.name: s for s in inner_spans}
        assert nested["CLIENT"].parent.span_id == server_span.context.span_id  # type: ignore[union-attr]
        assert relay.trace_ids == [trace_id]
        # the server span ends once the async method did, not when it was handed over
        assert server_span.end_time >= nested["CLIENT"].end_time  # type: ignore[operator]
        assert calls[("SERVER", "fail")].status.status_code.name == "ERROR"
        assert calls[("CLIENT", "fail")].status.status_code.name == "ERROR"
        assert "Failed to detach context" not in caplog.text

    # -- the same errors and clients as threaded code -------------------------

    @pytest.mark.asyncio
    async def test_aio_errors_clients_and_ping_match_the_threaded_api(
            self, aio: Callable[..., rpccore.aio.RPC]) -> None:
        from rpccore.errors import InvalidMessage, VersionCapError
        from rpccore.testing.long_calls_conformance import ComputeV1, ComputeV2
        topic = self.topic("aio-api")
        rpc = aio(self.hosts[0])
        await rpc.serve(rpc.make_destination(topic, host=self.hosts[0]),
                        [ComputeV1(), ComputeV2()]).start()
        client = aio()
        capped = client.client(topic, version_cap="auto", namespace="compute",
                               timeout=self.patience)
        assert await capped.can_send_version("2.1")
        assert await capped.prepare(version="2.0").call({}, "which") == "2.1"
        with pytest.raises(VersionCapError):
            await capped.prepare(version="2.2").call({}, "which")
        answer = await client.ping(client.make_destination(topic, host=self.hosts[0]),
                                   timeout=self.patience)
        assert answer["versions"]["compute"] == "2.1"
        with pytest.raises(InvalidMessage):
            await client.call({}, topic, {"args": {}})
        with pytest.raises(InvalidDestination):
            await client.call({}, client.make_destination(topic, fanout=True),
                              {"method": "which", "args": {}})
        with pytest.raises(InvalidMessage):
            await client.call({}, topic, {"method": "which", "args": {}}, heartbeat=0)
        if self.detects_undeliverable:
            with pytest.raises(Undeliverable):
                await client.call({}, self.topic("aio-nobody"),
                                  {"method": "which", "args": {}}, timeout=self.patience)
