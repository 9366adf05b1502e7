"""A rabbit (AMQP 0-9-1) cell and a qpid (AMQP 1.0) cell on the same broker,
with the same control_exchange, topics and hosts, never see each other's
messages: calls, direct calls and fanout casts stay within their cell.

Uses the shared RabbitMQ at 127.0.0.1:5672 (both protocols on one port) and
needs drivers/rabbit installed (fails loudly otherwise).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

from qpid_suites import delete_idle_queues
from rpccore import RPC
from rpccore.errors import Timeout, Undeliverable

URLS = {"rabbit": "rabbit://guest:guest@127.0.0.1:5672/",
        "qpid": "qpid://guest:guest@127.0.0.1:5672/"}
_namespaces: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def _delete_queues_at_the_end() -> Iterator[None]:
    yield
    delete_idle_queues(_namespaces)


class Named:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.notes: list[str] = []

    def who(self, ctx: dict[str, Any]) -> str:
        return self.name

    def note(self, ctx: dict[str, Any], value: str) -> None:
        with self.lock:
            self.notes.append(value)


def _both_cells(namespace: str) -> RPC:
    """One RPC object with a rabbit cell and a qpid cell."""
    _namespaces.add(namespace)
    rpc = RPC(cfg.ConfigOpts())
    for name, url in URLS.items():
        rpc.add_cell(name, url, control_exchange=namespace)
    return rpc


def test_rabbit_and_qpid_cells_on_one_broker_are_isolated() -> None:
    namespace = f"isolation-{os.urandom(4).hex()}"
    servers = _both_cells(namespace)
    client = _both_cells(namespace)
    topic, host = "shared.topic", "host-1"
    endpoints = {name: Named(name) for name in URLS}
    try:
        for name in URLS:
            servers.serve(servers.make_destination(topic, host=host, cell=name),
                          [endpoints[name]]).start()
        for name in URLS:
            for dest in (client.make_destination(topic, cell=name),
                         client.make_destination(topic, host=host, cell=name)):
                for _ in range(5):
                    assert client.call({}, dest, {"method": "who", "args": {}},
                                       timeout=5) == name
            client.cast({}, client.make_destination(topic, fanout=True, cell=name),
                        {"method": "note", "args": {"value": f"fanout-{name}"}})
        end = time.monotonic() + 5
        while time.monotonic() < end and not all(e.notes for e in endpoints.values()):
            time.sleep(0.02)
        time.sleep(0.3)  # a leaked fanout copy would have arrived by now
        for name, endpoint in endpoints.items():
            assert endpoint.notes == [f"fanout-{name}"]
    finally:
        client.close()
        servers.close()


@pytest.mark.parametrize("served,asked", [("rabbit", "qpid"), ("qpid", "rabbit")])
def test_a_topic_served_in_one_cell_is_not_served_in_the_other(served: str, asked: str) -> None:
    namespace = f"isolation-{os.urandom(4).hex()}"
    servers = _both_cells(namespace)
    client = _both_cells(namespace)
    try:
        servers.serve(servers.make_destination("only.here", cell=served), [Named(served)]).start()
        assert client.call({}, client.make_destination("only.here", cell=served),
                           {"method": "who", "args": {}}, timeout=5) == served
        with pytest.raises((Undeliverable, Timeout)):
            client.call({}, client.make_destination("only.here", cell=asked),
                        {"method": "who", "args": {}}, timeout=2)
    finally:
        client.close()
        servers.close()
