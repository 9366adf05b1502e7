"""Names on the live broker: topics and hosts too long for AMQP names are
hashed, and still reach exactly their own servers (machine's RabbitMQ)."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from oslo_config import cfg

from rpccore import RPC
from rpccore.errors import Undeliverable

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def who(self, ctx: dict[str, Any]) -> str:
        return self.name


def _rpc(exchange: str) -> RPC:
    rpc = RPC(cfg.ConfigOpts())
    rpc.remove_cell(rpc.default_cell)
    rpc.add_cell(rpc.default_cell, RABBIT_URL, control_exchange=exchange)
    return rpc


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
