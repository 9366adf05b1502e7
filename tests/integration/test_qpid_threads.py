"""proton objects stay on the qpid driver's I/O thread.

A proton wrapper (``Delivery``, ``Link``...) whose last Python reference is
dropped on another thread decrefs its C object there, racing the reactor:
heap corruption ("double free or corruption", ``malloc_consolidate(): invalid
chunk size``), seen in about one benchmark run in seven while servers' worker
threads still held the deliveries they had run. Every delivery wrapper must
therefore be finalized on the I/O thread.

Against the shared RabbitMQ (AMQP 1.0 plugin) at 127.0.0.1:5672.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from typing import Any

import proton
import pytest
from oslo_config import cfg

from conformance.test_qpid import delete_idle_queues
from rpccore import RPC

URL = os.environ.get("RPCCORE_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")
_namespaces: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def _delete_queues_at_the_end() -> Iterator[None]:
    yield
    delete_idle_queues(_namespaces)


class Endpoint:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def test_deliveries_are_finalized_on_the_io_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    finalized_on: list[str] = []
    original = proton.Delivery.__del__

    def recording_del(self: proton.Delivery) -> None:
        finalized_on.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(proton.Delivery, "__del__", recording_del)
    exchange = f"qpid-threads-{os.urandom(4).hex()}"
    _namespaces.add(exchange)
    rpc = RPC(cfg.ConfigOpts())
    rpc.remove_cell(rpc.default_cell)
    rpc.add_cell(rpc.default_cell, URL, control_exchange=exchange)
    try:
        server = rpc.serve("threads", [Endpoint()], workers=4).start()
        for i in range(100):
            assert rpc.call({}, "threads", {"method": "add", "args": {"a": i, "b": 1}},
                            timeout=10) == i + 1
        server.stop()
        assert server.wait(10)
        del server
        gc.collect()
    finally:
        rpc.close()
    gc.collect()
    assert finalized_on, "no delivery was finalized: the test saw nothing"
    elsewhere = [name for name in finalized_on if not name.startswith("rpccore-qpid-")]
    assert not elsewhere, f"{len(elsewhere)} of {len(finalized_on)} deliveries finalized " \
                          f"off the I/O thread, e.g. on {sorted(set(elsewhere))[:3]}"
