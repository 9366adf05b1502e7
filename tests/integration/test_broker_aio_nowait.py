"""Calls of asyncio code on rabbit and nats are handed to the driver on the
event loop (``Driver.send_nowait``: queued for the driver's own I/O thread
or loop, no confirm or reply waited for), not through a send thread; what
fails later (nobody consumes the destination) still reaches the awaiting
task. On the machine's RabbitMQ and NATS."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpccore.aio
from rpccore import RPC, Undeliverable
from rpccore.testing import single_cell_rpc

URLS = {"rabbit": "rabbit://guest:guest@127.0.0.1:5672/",
        "nats": "nats://127.0.0.1:4222"}


class Echo:
    def echo(self, ctx: dict[str, Any], value: int) -> int:
        return value


@pytest.fixture(params=sorted(URLS))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[RPC, RPC, str]]:
    """A threaded server of a fresh topic, and a threaded RPC to wrap."""
    topic = f"nowait-{uuid.uuid4().hex[:8]}"
    server = single_cell_rpc(URLS[request.param])
    client = single_cell_rpc(URLS[request.param])
    try:
        server.serve(topic, [Echo()]).start()
        yield server, client, topic
    finally:
        client.close()
        server.close()


def _count_threaded_sends(client: RPC) -> list[int]:
    """Wrap the client's driver ``send``: what it is called with from now on."""
    driver = client.cell().driver()
    sends: list[int] = []
    real_send = driver.send

    def send(*args: Any, **kwargs: Any) -> None:
        if kwargs.get("on_reply") is not None:
            sends.append(threading.get_ident())
        real_send(*args, **kwargs)

    driver.send = send  # type: ignore[method-assign]
    return sends


@pytest.mark.asyncio
async def test_asyncio_calls_skip_the_send_threads(served: tuple[RPC, RPC, str]) -> None:
    _, client, topic = served
    rpc = rpccore.aio.RPC.from_rpc(client)
    try:
        # the first call loads the driver and consumes the reply queue or inbox
        assert await rpc.call({}, topic, {"method": "echo", "args": {"value": -1}},
                              timeout=10) == -1
        sends = _count_threaded_sends(client)
        sent_before = client.cell().stats.get("sent")
        got = await asyncio.gather(*(
            rpc.call({}, topic, {"method": "echo", "args": {"value": i}}, timeout=10)
            for i in range(200)))
        assert got == list(range(200))
        # The outbox (nats) or the confirm limit (rabbit) may send a few from
        # a thread when full; most must go from the loop.
        assert len(sends) < 20, f"{len(sends)} of 200 calls went through send on a thread"
        assert client.cell().stats.get("sent") - sent_before == 200
    finally:
        await rpc.close()


@pytest.mark.asyncio
async def test_nobody_consuming_reaches_the_task(served: tuple[RPC, RPC, str]) -> None:
    _, client, topic = served
    rpc = rpccore.aio.RPC.from_rpc(client)
    try:
        assert await rpc.call({}, topic, {"method": "echo", "args": {"value": 1}},
                              timeout=10) == 1
        sends = _count_threaded_sends(client)
        failed_before = client.cell().stats.get("failed")
        with pytest.raises(Undeliverable):
            await rpc.call({}, f"nobody-{uuid.uuid4().hex[:8]}",
                           {"method": "echo", "args": {"value": 2}}, timeout=10)
        assert sends == []
        assert client.cell().stats.get("failed") == failed_before + 1
    finally:
        await rpc.close()
