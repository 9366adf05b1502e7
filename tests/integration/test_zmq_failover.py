"""Failover as the README promises it, with a static matchmaker that lists
hosts which do not serve the topic (they refuse) or do not exist at all (no
receipt)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rpccore import RPC, TransportError, Undeliverable
from rpccore.testing import wait_until
from rpccore_zmq.testing import free_port, zmq_rpc

REFUSER, SERVER, NOBODY = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class Sink:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.lock = threading.Lock()

    def note(self, ctx: dict[str, Any], value: int) -> None:
        with self.lock:
            self.values.append(value)

    def whoami(self, ctx: dict[str, Any]) -> str:
        return SERVER


@pytest.fixture
def setup() -> Iterator[tuple[int, str, RPC, RPC, Sink]]:
    port = free_port()
    topic = "failover." + os.urandom(4).hex()
    refuser = zmq_rpc(port, zmq_bind_address=REFUSER)
    server = zmq_rpc(port, zmq_bind_address=SERVER)
    sink = Sink()
    try:
        # the refuser serves another topic only, so its socket is up
        refuser.serve(refuser.make_destination("other", host=REFUSER), [Sink()]).start()
        server.serve(server.make_destination(topic, host=SERVER), [sink]).start()
        yield port, topic, refuser, server, sink
    finally:
        server.close()
        refuser.close()


def test_a_refusing_host_passes_messages_on(setup: tuple[int, str, RPC, RPC, Sink]) -> None:
    port, topic, refuser, _, sink = setup
    client = zmq_rpc(port, static_hosts={topic: [REFUSER, SERVER], "lonely": [REFUSER]})
    try:
        for _ in range(6):  # round-robin starts at either host; all end at SERVER
            assert client.call({}, topic, {"method": "whoami", "args": {}}, timeout=5) == SERVER
        for value in range(10):
            client.cast({}, topic, {"method": "note", "args": {"value": value}})
        assert wait_until(lambda: sorted(sink.values) == list(range(10)))
        assert refuser.cell().stats.get("zmq_refused") >= 3
        assert client.cell().stats.get("zmq_rerouted") >= 3

        start = time.monotonic()
        with pytest.raises(Undeliverable):
            client.call({}, "lonely", {"method": "whoami", "args": {}}, timeout=5)
        with pytest.raises(Undeliverable):
            client.call({}, client.make_destination(topic, host=REFUSER),
                        {"method": "whoami", "args": {}}, timeout=5)
        assert time.monotonic() - start < 2, "a refusal is reported at once"
        client.cast({}, "lonely", {"method": "note", "args": {"value": 1}})
        assert wait_until(lambda: client.cell().stats.get("returned") == 1)
    finally:
        client.close()


def test_a_host_that_does_not_exist_is_skipped(
        setup: tuple[int, str, RPC, RPC, Sink]) -> None:
    port, topic, _, _, sink = setup
    client = zmq_rpc(port, static_hosts={topic: [NOBODY, SERVER]}, zmq_receipt_timeout=0.3)
    try:
        for value in range(10):
            client.cast({}, topic, {"method": "note", "args": {"value": value}})
        assert wait_until(lambda: sorted(sink.values) == list(range(10)))
        assert client.call({}, topic, {"method": "whoami", "args": {}}, timeout=5) == SERVER
        # a fanout whose copy to the missing host is never acknowledged
        with pytest.raises(TransportError):
            client.cast({}, client.make_destination(topic, fanout=True),
                        {"method": "note", "args": {"value": 99}}, confirm=True)
        assert wait_until(lambda: 99 in sink.values)
    finally:
        client.close()
