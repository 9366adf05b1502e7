"""Calls of asyncio code on zmq: handed to the client's loop (the core tells
the driver that the caller waits elsewhere), so a send thread is free at
once, the calls in flight share the peer's one connection, and what fails
after ``send`` returned (every host refused, no receipt) still reaches the
awaiting task as the same error a threaded call gets."""

from __future__ import annotations

import asyncio
import os
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
