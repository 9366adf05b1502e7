"""The driver conformance suite on the qpid (AMQP 1.0) driver, against the
shared RabbitMQ at 127.0.0.1:5672 with the rabbitmq_amqp1_0 plugin.

Every test gets its own control_exchange, so tests (and other suites on the
same broker) never see each other's messages. Work and direct queues are
meant to outlive their servers, so the module deletes the ones its tests
made (over AMQP 0-9-1, test-side only: AMQP 1.0 on RabbitMQ 3.10 cannot
delete queues) when it ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from rpccore import RPC
from process_peers import ServerProcess
from rpccore.testing import BrokerDriverConformance
from rpccore.testing.server_peers import NAPPER

URL = os.environ.get("RPCCORE_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")
_namespaces: set[str] = set()


def delete_idle_queues(namespaces: set[str]) -> int:
    """Delete the shared broker's unused work and direct queues of ``namespaces``."""
    import amqp

    listing = subprocess.run(["rabbitmqctl", "list_queues", "-q", "name", "consumers"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    names = [line.split("\t")[0] for line in listing.splitlines()
             if line.endswith("\t0") and line.split(".")[2:3] and
             line.startswith(("rpccore-qpid.w.", "rpccore-qpid.d.")) and
             line.split(".")[2] in namespaces]
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name, if_unused=True)
    return len(names)


@pytest.fixture(scope="module", autouse=True)
def _delete_queues_at_the_end() -> Iterator[None]:
    yield
    if _namespaces:
        delete_idle_queues(_namespaces)


class TestQpidConformance(BrokerDriverConformance):
    def _namespace_name(self) -> str:
        if not hasattr(self, "_namespace"):
            self._namespace = f"conformance-{os.urandom(4).hex()}"
            _namespaces.add(self._namespace)
        return self._namespace

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._namespace_name())
        rpc.add_cell(rpc.default_cell, URL, **options)
        return rpc

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        return ServerProcess(URL, topic, host, [(NAPPER, {"announce": True})],
                             control_exchange=self._namespace_name()).wait_ready()
