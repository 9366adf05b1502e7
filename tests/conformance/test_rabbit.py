"""The driver conformance suite on the rabbit driver, against the machine's
RabbitMQ (127.0.0.1:5672, guest/guest). Each test gets its own
control_exchange, deleted afterwards, so runs never clash; a missing broker
fails every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
from oslo_config import cfg

from rpccore import RPC
from process_peers import ServerProcess
from rpccore.testing import BrokerDriverConformance
from rpccore.testing.server_peers import NAPPER

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


class TestRabbitConformance(BrokerDriverConformance):
    def _exchange_name(self) -> str:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{os.urandom(4).hex()}"
        return self._exchange

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._exchange_name())
        rpc.add_cell(rpc.default_cell, RABBIT_URL, **options)
        return rpc

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        return ServerProcess(RABBIT_URL, topic, host, [(NAPPER, {"announce": True})],
                             control_exchange=self._exchange_name()).wait_ready()

    @pytest.fixture(autouse=True)
    def _delete_exchange(self) -> Iterator[None]:
        yield
        exchange = getattr(self, "_exchange", None)
        if exchange is None:
            return
        rpc = RPC(cfg.ConfigOpts())
        rpc.add_cell("cleanup", RABBIT_URL)
        host = rpc.cell("cleanup").url.hosts[0]
        rpc.close()
        conn = amqp.Connection(f"{host.hostname}:{host.port or 5672}",
                               userid=host.username or "guest",
                               password=host.password or "guest")
        conn.connect()
        try:
            conn.channel().exchange_delete(exchange)
        finally:
            conn.close()
