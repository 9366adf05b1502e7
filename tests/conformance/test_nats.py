"""The driver conformance suite on the nats driver, against the machine's
NATS with JetStream (127.0.0.1:4222; ``RPCCORE_TEST_NATS_URL`` overrides).

Every test gets its own control_exchange, so tests (and other runs on the
same server) never see each other's subjects; the JetStream work-queue
stream each exchange gets is deleted when the test ends. A missing server
fails every test.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from oslo_config import cfg

from rpccore import RPC
from rpccore.testing import BrokerDriverConformance
from rpccore_nats.naming import Subjects

NATS_URL = os.environ.get("RPCCORE_TEST_NATS_URL", "nats://127.0.0.1:4222")


def delete_streams(names: list[str], url: str = NATS_URL) -> None:
    """Delete JetStream streams a test made (missing ones are fine)."""
    async def run() -> None:
        client = await nats.connect(url.replace("nats://", "nats://", 1))
        try:
            jsm = client.jsm()
            for name in names:
                try:
                    await jsm.delete_stream(name)
                except nats.js.errors.NotFoundError:
                    pass
        finally:
            await client.close()

    asyncio.run(run())


class TestNatsConformance(BrokerDriverConformance):
    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{os.urandom(4).hex()}"
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._exchange)
        rpc.add_cell(rpc.default_cell, NATS_URL, **options)
        return rpc

    @pytest.fixture(autouse=True)
    def _delete_stream(self) -> Iterator[None]:
        yield
        exchange = getattr(self, "_exchange", None)
        if exchange is not None:
            delete_streams([Subjects(exchange).cast_stream])
