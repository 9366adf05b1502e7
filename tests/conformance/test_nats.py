"""The driver conformance suite on the nats driver, against the machine's
NATS with JetStream (127.0.0.1:4222; ``RPCCORE_TEST_NATS_URL`` overrides:
see tests/private_nats.py).

Every test gets its own control_exchange, so tests (and other runs on the
same server) never see each other's subjects; the JetStream streams of
each exchange are deleted when the test ends. A missing server
fails every test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from private_nats import NATS_URL, delete_streams_of
from rpccore import RPC
from rpccore.testing import BrokerDriverConformance, BrokerNotificationConformance, single_cell_rpc


class TestNatsConformance(BrokerDriverConformance, BrokerNotificationConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{os.urandom(4).hex()}"
        options.setdefault("control_exchange", self._exchange)
        return single_cell_rpc(NATS_URL, **options)

    @pytest.fixture(autouse=True)
    def _delete_stream(self) -> Iterator[None]:
        yield
        exchange = getattr(self, "_exchange", None)
        if exchange is not None:
            delete_streams_of(exchange)
