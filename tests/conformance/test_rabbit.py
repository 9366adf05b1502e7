"""The driver conformance suite on the rabbit driver, against the machine's
RabbitMQ (127.0.0.1:5672, guest/guest). Each test gets its own
control_exchange, so runs never clash; a missing broker fails every test."""

from __future__ import annotations

import os
from typing import Any

from oslo_config import cfg

from rpccore import RPC
from rpccore.testing import BrokerDriverConformance

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


class TestRabbitConformance(BrokerDriverConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{os.urandom(4).hex()}"
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._exchange)
        rpc.add_cell(rpc.default_cell, RABBIT_URL, **options)
        return rpc
