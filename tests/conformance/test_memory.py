"""The driver conformance suite on the built-in memory driver."""

from __future__ import annotations

import os
from typing import Any

from rpccore import RPC
from rpccore.testing import BrokerDriverConformance, BrokerNotificationConformance, single_cell_rpc


class TestMemoryConformance(BrokerDriverConformance, BrokerNotificationConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_namespace"):
            self._namespace = os.urandom(4).hex()
        return single_cell_rpc(f"memory:///{self._namespace}", **options)
