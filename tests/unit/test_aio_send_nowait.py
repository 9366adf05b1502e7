"""rpccore.aio and ``Driver.send_nowait``: a call that the driver can send
without blocking is sent on the event loop's thread; one it declines goes
to a send thread, with ``caller_elsewhere`` set; what it raises, or reports
later, reaches the awaiting task, counted as failed (memory driver, whose
``send_nowait`` the tests stand in for)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import rpccore
import rpccore.aio
from rpccore.driver import caller_elsewhere
from rpccore.errors import RPCError
from rpccore.testing import memory_rpc


class Service:
    def plain(self, ctx: dict[str, Any]) -> str:
        return "plain"


class Sends:
    """What the driver's ``send`` and ``send_nowait`` saw: the thread of
    each, and whether ``caller_elsewhere`` was set for ``send``."""

    def __init__(self, rpc: rpccore.aio.RPC,
                 nowait: Callable[..., bool] | None = None) -> None:
        driver = rpc.threaded.cell().driver()
        self.real_send = driver.send
        self.sends: list[tuple[int, bool]] = []
        self.nowaits: list[int] = []

        def send(*args: Any, **kwargs: Any) -> None:
            self.sends.append((threading.get_ident(), caller_elsewhere.get() is not None))
            self.real_send(*args, **kwargs)

        def send_nowait(*args: Any, **kwargs: Any) -> bool:
            self.nowaits.append(threading.get_ident())
            return (nowait or self.take)(*args, **kwargs)

        driver.send = send  # type: ignore[method-assign]
        driver.send_nowait = send_nowait  # type: ignore[method-assign]

    def take(self, dest: Any, body: bytes, *, on_reply: Any, deadline: float,
             on_failure: Any) -> bool:
        self.real_send(dest, body, on_reply=on_reply, deadline=deadline)
        return True


async def started() -> rpccore.aio.RPC:
    rpc = rpccore.aio.RPC.from_rpc(memory_rpc())
    await rpc.serve("svc", [Service()]).start()
    return rpc


@pytest.mark.asyncio
async def test_a_call_the_driver_takes_without_blocking_is_sent_on_the_loop() -> None:
    rpc = await started()
    try:
        sends = Sends(rpc)
        assert await rpc.call({}, "svc", {"method": "plain", "args": {}}) == "plain"
        assert sends.nowaits == [threading.get_ident()] and sends.sends == []
        assert rpc.stats()["default"]["sent"] == 1
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_a_call_the_driver_declines_goes_to_a_send_thread() -> None:
    rpc = await started()
    try:
        sends = Sends(rpc, nowait=lambda *args, **kwargs: False)
        assert await rpc.call({}, "svc", {"method": "plain", "args": {}}) == "plain"
        assert len(sends.nowaits) == 1
        ((thread, elsewhere),) = sends.sends
        assert thread != threading.get_ident() and elsewhere
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_what_send_nowait_raises_reaches_the_task_counted_as_failed() -> None:
    rpc = await started()
    try:
        def refuse(*args: Any, **kwargs: Any) -> bool:
            raise rpccore.Undeliverable("nobody here")

        Sends(rpc, nowait=refuse)
        with pytest.raises(rpccore.Undeliverable):
            await rpc.call({}, "svc", {"method": "plain", "args": {}}, timeout=5)
        assert rpc.stats()["default"]["failed"] == 1
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_a_failure_reported_after_send_nowait_reaches_the_task() -> None:
    rpc = await started()
    try:
        def lost(dest: Any, body: bytes, *, on_failure: Callable[[RPCError], None],
                 **kwargs: Any) -> bool:
            threading.Thread(target=on_failure,
                             args=(rpccore.TransportError("the host died"),)).start()
            return True

        Sends(rpc, nowait=lost)
        with pytest.raises(rpccore.TransportError, match="the host died"):
            await rpc.call({}, "svc", {"method": "plain", "args": {}}, timeout=5)
        stats = rpc.stats()["default"]
        assert stats["sent"] == 1 and stats["failed"] == 1
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_a_driver_not_loaded_yet_is_loaded_on_a_send_thread() -> None:
    rpc = rpccore.aio.RPC.from_rpc(memory_rpc())
    try:
        cell = rpc.threaded.cell()
        assert not cell.loaded
        real_driver = cell.driver
        loaded_on: list[int] = []

        def driver() -> Any:
            loaded_on.append(threading.get_ident())
            return real_driver()

        cell.driver = driver  # type: ignore[method-assign]
        with pytest.raises(rpccore.Undeliverable):  # nobody serves it
            await rpc.call({}, "svc", {"method": "plain", "args": {}}, timeout=5)
        assert cell.loaded and loaded_on and threading.get_ident() not in loaded_on
    finally:
        await rpc.close()
