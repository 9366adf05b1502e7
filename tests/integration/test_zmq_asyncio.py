"""Calls of asyncio code on zmq: sent from the event loop when that cannot
block (``send_nowait``), else handed to the client's loop (the core tells
the driver that the caller waits elsewhere), so a send thread is free at
once, the calls in flight share the peer's one connection, and what fails
after ``send`` returned (every host refused, no receipt) still reaches the
awaiting task as the same error a threaded call gets."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpccore.aio
from rpccore import RPC, TransportError, Undeliverable
from rpccore_zmq.testing import free_port, zmq_rpc

REFUSER, SERVER, NOBODY = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class Napper:
    def nap(self, ctx: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)
        return SERVER

    def whoami(self, ctx: dict[str, Any]) -> str:
        return SERVER


@pytest.fixture
def hosts() -> Iterator[tuple[int, str]]:
    port = free_port()
    topic = "aio." + os.urandom(4).hex()
    refuser = zmq_rpc(port, zmq_bind_address=REFUSER)
    server = zmq_rpc(port, zmq_bind_address=SERVER, server_workers=64)
    try:
        refuser.serve(refuser.make_destination("other", host=REFUSER), [Napper()]).start()
        server.serve(server.make_destination(topic, host=SERVER), [Napper()]).start()
        yield port, topic
    finally:
        server.close()
        refuser.close()


def client(port: int, topic: str, **options: Any) -> RPC:
    return zmq_rpc(port, static_hosts={topic: [REFUSER, SERVER], "lonely": [REFUSER],
                                       "missing": [NOBODY]}, **options)


@pytest.mark.asyncio
async def test_asyncio_calls_do_not_hold_a_send_thread_for_their_round_trip(
        hosts: tuple[int, str]) -> None:
    port, topic = hosts
    threaded = client(port, topic)
    try:
        rpc = rpccore.aio.RPC.from_rpc(threaded, send_threads=2)
        message = {"method": "nap", "args": {"seconds": 0.3}}
        start = time.monotonic()
        got = await asyncio.gather(*(rpc.call({}, topic, message, timeout=10)
                                     for _ in range(64)))
        elapsed = time.monotonic() - start
        assert got == [SERVER] * 64
        # two send threads each holding a call for its 0.3 s would take 9.6 s
        assert elapsed < 3.0, elapsed
        # and no connection of its own per call: the calls went on the
        # peer's shared connection
        assert threaded.cell().driver()._client.calls.pool.idle() == {}
        await rpc.close()
    finally:
        threaded.close()


@pytest.mark.asyncio
async def test_failures_after_the_send_reach_the_awaiting_task(
        hosts: tuple[int, str]) -> None:
    port, topic = hosts
    threaded = client(port, topic, zmq_receipt_timeout=0.3)
    try:
        rpc = rpccore.aio.RPC.from_rpc(threaded)
        message = {"method": "whoami", "args": {}}
        for _ in range(4):  # whichever host comes first, the refuser passes it on
            assert await rpc.call({}, topic, message, timeout=5) == SERVER
        start = time.monotonic()
        with pytest.raises(Undeliverable):
            await rpc.call({}, "lonely", message, timeout=5)
        with pytest.raises(Undeliverable):
            await rpc.call({}, rpc.make_destination(topic, host=REFUSER), message, timeout=5)
        assert time.monotonic() - start < 2, "a refusal is reported at once"
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            await rpc.call({}, "missing", message, timeout=5)
        assert "no receipt" in str(info.value)
        assert time.monotonic() - start < 3, "not the call's timeout"
        assert threaded.cell().stats.get("failed") == 3  # counted as if send had raised
        await rpc.close()
    finally:
        threaded.close()


@pytest.mark.asyncio
async def test_calls_to_known_hosts_are_sent_from_the_loop_without_blocking_it(
        hosts: tuple[int, str]) -> None:
    port, topic = hosts
    threaded = client(port, topic, zmq_lookup_cache_ttl=60.0)
    try:
        rpc = rpccore.aio.RPC.from_rpc(threaded)
        message = {"method": "whoami", "args": {}}
        assert await rpc.call({}, topic, message, timeout=5) == SERVER  # looked up
        driver = threaded.cell().driver()
        sends: list[int] = []
        real_send = driver.send

        def send(*args: Any, **kwargs: Any) -> None:
            sends.append(threading.get_ident())
            real_send(*args, **kwargs)

        driver.send = send  # type: ignore[method-assign]
        direct = rpc.make_destination(topic, host=SERVER)
        got = await asyncio.gather(*(rpc.call({}, topic if i % 2 else direct, message,
                                              timeout=5) for i in range(64)))
        assert got == [SERVER] * 64
        assert sends == [], "sent by driver.send on a thread, not send_nowait on the loop"
        # Another thread holding the connection (the client's loop reading
        # replies, say) hands the call to the client's loop: the event loop
        # never waits for the lock.
        conn = driver._client.casts.connections.get(f"tcp://{SERVER}:{port}")
        assert conn is not None
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with conn.lock:
                held.set()
                release.wait(5)

        threading.Thread(target=hold, daemon=True).start()
        assert held.wait(5)
        try:
            start = time.monotonic()
            call = asyncio.ensure_future(rpc.call({}, direct, message, timeout=5))
            await asyncio.sleep(0.2)
            assert time.monotonic() - start < 0.5 and not call.done()
        finally:
            release.set()
        assert await call == SERVER and sends == []
        await rpc.close()
    finally:
        threaded.close()
