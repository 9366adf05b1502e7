"""The driver conformance suite on the qpid (AMQP 1.0) driver, against the
shared RabbitMQ at 127.0.0.1:5672 with the rabbitmq_amqp1_0 plugin.

Every test gets its own control_exchange, so tests (and other suites on the
same broker) never see each other's messages.
"""

from __future__ import annotations

import os
from typing import Any

from oslo_config import cfg

from rpccore import RPC
from rpccore.testing import BrokerDriverConformance

URL = os.environ.get("RPCCORE_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")


class TestQpidConformance(BrokerDriverConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_namespace"):
            self._namespace = f"conformance-{os.urandom(4).hex()}"
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._namespace)
        rpc.add_cell(rpc.default_cell, URL, **options)
        return rpc
