"""Names on the live broker: topics and hosts too long for AMQP names are
hashed, and still reach exactly their own servers (machine's RabbitMQ)."""

from __future__ import annotations

import os
import time
from typing import Any

import amqp
import pytest

from rpccore import RPC
from rpccore.errors import Undeliverable
from rpccore.testing import single_cell_rpc
from rpccore_rabbit import addressing

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def who(self, ctx: dict[str, Any]) -> str:
        return self.name


def _rpc(exchange: str) -> RPC:
    return single_cell_rpc(RABBIT_URL, control_exchange=exchange)


def test_long_and_odd_names_reach_their_own_servers() -> None:
    exchange = f"names {os.urandom(4).hex()} é/#*"   # not a plain AMQP name either
    base = "t" * 300 + os.urandom(4).hex()
    pairs = [(base, "h" * 300), (base, "h" * 300 + "x"), (base + "x", "h" * 300),
             (base + ".#", "é" * 200), ("short", "é" * 200)]
    rpcs = []
    try:
        for topic, host in pairs:
            rpc = _rpc(exchange)
            rpcs.append(rpc)
            rpc.serve(rpc.make_destination(topic, host=host), [Named(f"{topic}|{host}")]).start()
        client = _rpc(exchange)
        rpcs.append(client)
        for topic, host in pairs:
            dest = client.make_destination(topic, host=host)
            assert client.call({}, dest, {"method": "who", "args": {}}, timeout=10) \
                == f"{topic}|{host}"
    finally:
        for rpc in rpcs:
            rpc.close()
        _delete_queues(exchange, pairs)


def _delete_queues(exchange: str, pairs: list[tuple[str, str]]) -> None:
    """The work and host queues are durable (they outlive their servers):
    remove this test's."""
    names = {addressing.queue_name(exchange, addressing.work_key(t)) for t, _ in pairs}
    names |= {addressing.queue_name(exchange, addressing.direct_key(t, h)) for t, h in pairs}
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)


def test_casts_to_nobody_confirmed_raise_plain_ones_are_counted() -> None:
    client = _rpc(f"nobody-{os.urandom(4).hex()}")
    try:
        with pytest.raises(Undeliverable):
            client.cast({}, "nobody.here", {"method": "m", "args": {}}, confirm=True)
        start = time.monotonic()
        for _ in range(50):
            client.cast({}, "nobody.here", {"method": "m", "args": {}})
        assert time.monotonic() - start < 1.0, "plain casts must not wait for the broker"
        end = time.monotonic() + 10
        while client.stats()[client.default_cell]["returned"] < 50 and time.monotonic() < end:
            time.sleep(0.01)
        assert client.stats()[client.default_cell]["returned"] == 50
    finally:
        client.close()
