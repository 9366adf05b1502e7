"""rpccore.aio on the memory driver: what the conformance kit cannot bring
about on a real backend (a silent server, a stop that must cancel, a closed
object), and the promises about threads and context variables."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import rpccore
import rpccore.aio
from rpccore import server as server_module
from rpccore.testing import memory_rpc
from rpccore.testing.loop_lag import LoopLag, watch_drivers

TENANT = contextvars.ContextVar("TENANT", default="none")


class Service:
    rpc_version = "1.4"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0
        self.tenants: list[str] = []

    async def hold(self, ctx: dict[str, Any]) -> str:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return "released"

    async def tenant(self, ctx: dict[str, Any]) -> str:
        return TENANT.get()

    async def numbered(self, ctx: dict[str, Any], n: int) -> AsyncIterator[str]:
        TENANT.set("set-in-generator")
        for i in range(n):
            yield f"{i}:{TENANT.get()}"

    def plain(self, ctx: dict[str, Any]) -> str:
        return "plain"


class Mute:
    """Stands in for the keepalive thread of a server that hangs."""

    def start(self, request: object, interval: float) -> None:
        pass


def aio_rpc() -> rpccore.aio.RPC:
    return rpccore.aio.RPC.from_rpc(memory_rpc())


@pytest.mark.asyncio
async def test_the_default_rpc_works_out_of_the_box_and_closes_everything() -> None:
    async with rpccore.aio.RPC() as rpc:
        server = await rpc.serve("svc", [Service()]).start()
        assert await rpc.call({}, "svc", {"method": "plain", "args": {}}) == "plain"
        await rpc.cast({}, "svc", {"method": "plain", "args": {}}, confirm=True)
        assert rpc.default_cell == "default" and rpc.cell_names == ["default"]
        assert rpc.stats()["default"]["sent"] == 2
    assert not server.running
    with pytest.raises(rpccore.RPCError):
        rpc.serve("svc", [Service()])
    with pytest.raises(rpccore.RPCError):
        await rpc.call({}, "svc", {"method": "plain", "args": {}})


@pytest.mark.asyncio
async def test_from_rpc_shares_cells_and_leaves_the_threaded_object_open() -> None:
    threaded = memory_rpc()
    async with rpccore.aio.RPC.from_rpc(threaded) as rpc:
        await rpc.serve("svc", [Service()]).start()
        assert await rpc.call({}, "svc", {"method": "plain", "args": {}}) == "plain"
        assert rpc.threaded is threaded
    threaded.serve("other", [Service()]).start()  # still open
    assert await asyncio.to_thread(threaded.call, {}, "other",
                                   {"method": "plain", "args": {}}) == "plain"
    threaded.close()


@pytest.mark.asyncio
async def test_a_silent_server_is_noticed_after_the_heartbeat(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "KEEPALIVES", Mute())
    async with aio_rpc() as rpc:
        service = Service()
        await rpc.serve("svc", [service]).start()
        start = time.monotonic()
        with pytest.raises(rpccore.Timeout) as err:
            await rpc.call({}, "svc", {"method": "hold", "args": {}}, timeout=20, heartbeat=0.3)
        assert 0.3 <= time.monotonic() - start < 2.0
        assert "went silent" in str(err.value)
        service.release.set()


@pytest.mark.asyncio
async def test_keepalives_keep_a_long_async_method_alive() -> None:
    async with aio_rpc() as rpc:
        service = Service()
        await rpc.serve("svc", [service]).start()
        asyncio.get_running_loop().call_later(0.8, service.release.set)
        assert await rpc.call({}, "svc", {"method": "hold", "args": {}}, timeout=10,
                              heartbeat=0.3) == "released"


@pytest.mark.asyncio
async def test_stop_waits_for_async_methods_then_cancels_them_after_its_timeout() -> None:
    async with aio_rpc() as rpc:
        service = Service()
        server = await rpc.serve("svc", [service]).start()
        call = asyncio.create_task(rpc.call({}, "svc", {"method": "hold", "args": {}},
                                            timeout=10))
        while service.started < 1:
            await asyncio.sleep(0.01)
        start = time.monotonic()
        assert await server.stop(timeout=0.3) is False
        assert 0.3 <= time.monotonic() - start < 2.0
        assert service.cancelled == 1
        with pytest.raises(rpccore.RemoteError) as err:
            await call
        assert err.value.exc_type == "rpccore.Cancelled"


@pytest.mark.asyncio
async def test_stop_answers_what_was_received_before_it_returns() -> None:
    async with aio_rpc() as rpc:
        service = Service()
        server = await rpc.serve("svc", [service]).start()
        calls = [asyncio.create_task(rpc.call({}, "svc", {"method": "hold", "args": {}},
                                              timeout=10)) for _ in range(5)]
        while service.started < 5:
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.2, service.release.set)
        assert await server.stop() is True
        assert [call.done() for call in calls] == [True] * 5
        assert await asyncio.gather(*calls) == ["released"] * 5


@pytest.mark.asyncio
async def test_context_variables_follow_requests_into_sends_and_async_generators() -> None:
    async with aio_rpc() as rpc:
        await rpc.serve("svc", [Service()]).start()
        cell = rpc.threaded.cell()
        driver = cell.driver()
        seen: list[str] = []
        real_send = driver.send

        def send(*args: Any, **kwargs: Any) -> None:
            seen.append(TENANT.get())
            real_send(*args, **kwargs)

        driver.send = send  # type: ignore[method-assign]
        TENANT.set("acme")
        await rpc.call({}, "svc", {"method": "plain", "args": {}})
        assert seen == ["acme"]
        items = [x async for x in rpc.stream({}, "svc", {"method": "numbered",
                                                          "args": {"n": 3}})]
        # what the generator set stays set from one item to the next
        assert items == ["0:set-in-generator", "1:set-in-generator", "2:set-in-generator"]
        assert TENANT.get() == "acme"


@pytest.mark.asyncio
async def test_a_threaded_server_refuses_async_methods_with_a_clear_error() -> None:
    async with aio_rpc() as rpc:
        rpc.threaded.serve("svc", [Service()]).start()
        with pytest.raises(rpccore.RemoteError) as err:
            await rpc.call({}, "svc", {"method": "tenant", "args": {}})
        assert err.value.exc_type == "rpccore.InvalidResult"
        assert "rpccore.aio" in err.value.value


@pytest.mark.asyncio
async def test_clients_prepare_and_cap_like_threaded_ones() -> None:
    async with aio_rpc() as rpc:
        await rpc.serve("svc", [Service()]).start()
        client = rpc.client("svc", version_cap="1.4", timeout=5)
        assert await client.call({}, "plain") == "plain"
        assert await client.can_send_version("1.3") and not await client.can_send_version("2.0")
        prepared = client.prepare(version="1.2", heartbeat=2)
        assert (prepared.version, prepared.heartbeat, client.version) == ("1.2", 2, None)
        assert await prepared.call({}, "plain") == "plain"
        with pytest.raises(rpccore.VersionCapError):
            await client.prepare(version="1.5").cast({}, "plain")
        assert [x async for x in client.stream({}, "numbered", n=2)] == [
            "0:set-in-generator", "1:set-in-generator"]
        assert len(await client.prepare(timeout=0.2).gather({}, "plain")) == 1
        assert "rpccore.aio.Client" in repr(client)


@pytest.mark.asyncio
async def test_remove_cell_stops_its_servers() -> None:
    async with aio_rpc() as rpc:
        rpc.add_cell("edge", "memory:///edge-" + str(id(rpc)))
        server = await rpc.serve(rpc.make_destination("svc", cell="edge"), [Service()]).start()
        await rpc.remove_cell("edge")
        assert not server.running
        with pytest.raises(rpccore.InvalidDestination):
            await rpc.remove_cell("edge")


@pytest.mark.asyncio
async def test_the_watcher_of_the_conformance_kit_sees_driver_calls_on_the_loop() -> None:
    # The loop-lag check relies on it: a send made on the loop must show.
    async with aio_rpc() as rpc:
        server = await rpc.serve("svc", [Service()]).start()
        on_loop = watch_drivers([rpc, server], threading.get_ident())
        await rpc.call({}, "svc", {"method": "plain", "args": {}})
        assert on_loop == []
        rpc.threaded.cast({}, "svc", {"method": "plain", "args": {}})  # on the loop
        assert on_loop == ["send"]


@pytest.mark.asyncio
@pytest.mark.timing
async def test_the_lag_meter_sees_a_blocked_loop() -> None:
    async with LoopLag() as lag:
        await asyncio.sleep(0.05)
        time.sleep(0.1)  # blocks the loop on purpose
        await asyncio.sleep(0.05)
    assert lag.worst >= 0.08 and lag.worst_own >= 0.08  # the loop ran: its own doing
