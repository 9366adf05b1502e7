"""Behaviours of the asyncio API (docs/asyncio.rst) every driver must show (pytest with
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
from rpccore.testing.aio_services import AsyncService, Relay
from rpccore.testing.loop_lag import CONCURRENT, MAX_LAG, LoopLag, watch_drivers

if TYPE_CHECKING:
    from rpccore.rpc import RPC

__all__ = ["AioConformance", "LoopLag", "watch_drivers", "MAX_LAG", "CONCURRENT",
           "AsyncService", "Relay"]


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
    @pytest.mark.timing
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
