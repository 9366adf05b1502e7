"""The driver conformance suite on the built-in memory driver."""

from __future__ import annotations

import os
from typing import Any

from oslo_config import cfg

from rpccore import RPC
from rpccore.testing import BrokerDriverConformance, BrokerNotificationConformance


class TestMemoryConformance(BrokerDriverConformance, BrokerNotificationConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_namespace"):
            self._namespace = os.urandom(4).hex()
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        rpc.add_cell(rpc.default_cell, f"memory:///{self._namespace}", **options)
        return rpc
