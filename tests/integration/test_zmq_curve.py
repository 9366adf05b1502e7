"""CURVE on zmq cells: encrypted traffic, and only allowed clients served.

The wire test puts a recording TCP relay between client and server and
checks that a marker sent in a call is readable on the wire without CURVE
and not with it.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from zmq.utils import z85

from rpccore import RPC, ConfigError, TransportError
from rpccore_zmq.testing import free_port, zmq_rpc

SERVER_HOST = "127.0.0.2"
MARKER = "plain-text-marker-" + os.urandom(4).hex()


class Echo:
    def echo(self, ctx: dict[str, Any], value: str) -> str:
        return value


def keypair() -> tuple[str, str]:
    """As hex: Z85 keys may hold '$', which oslo.config would substitute."""
    public, secret = zmq.curve_keypair()
    return z85.decode(public).hex(), z85.decode(secret).hex()


class Relay:
    """A TCP relay that records every byte passing through it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.recorded = bytearray()
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = [self.listener]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while not self.stopped:
            try:
                ready, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    with self.lock:
                        self.recorded += data
                    peers[sock].sendall(data)
            except OSError:
                return

    def seen(self) -> bytes:
        with self.lock:
            return bytes(self.recorded)

    def close(self) -> None:
        self.stopped = True
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def keys() -> dict[str, str]:
    server_public, server_secret = keypair()
    client_public, client_secret = keypair()
    return {"server_public": server_public, "server_secret": server_secret,
            "client_public": client_public, "client_secret": client_secret}


def serve(port: int, topic: str, **options: Any) -> RPC:
    rpc = zmq_rpc(port, zmq_bind_address=SERVER_HOST, **options)
    rpc.serve(rpc.make_destination(topic, host=SERVER_HOST), [Echo()]).start()
    return rpc


def call_through_relay(port: int, topic: str, **client_options: Any) -> tuple[str, bytes]:
    relay = Relay((SERVER_HOST, port))
    client = zmq_rpc(port, static_hosts={topic: [f"127.0.0.1:{relay.port}"]}, **client_options)
    try:
        answer = client.call({}, topic, {"method": "echo", "args": {"value": MARKER}}, timeout=5)
        return answer, relay.seen()
    finally:
        client.close()
        relay.close()


def test_without_curve_the_wire_is_readable() -> None:
    port, topic = free_port(), "curve." + os.urandom(4).hex()
    server = serve(port, topic)
    try:
        answer, wire = call_through_relay(port, topic)
        assert answer == MARKER
        assert MARKER.encode() in wire
    finally:
        server.close()


def test_with_curve_the_wire_is_not_readable(keys: dict[str, str]) -> None:
    port, topic = free_port(), "curve." + os.urandom(4).hex()
    server = serve(port, topic, zmq_curve_server_public_key=keys["server_public"],
                   zmq_curve_server_secret_key=keys["server_secret"])
    try:
        answer, wire = call_through_relay(port, topic,
                                          zmq_curve_server_public_key=keys["server_public"])
        assert answer == MARKER
        assert len(wire) > 200
        assert MARKER.encode() not in wire
        assert topic.encode() not in wire
    finally:
        server.close()


@pytest.fixture
def guarded(keys: dict[str, str]) -> Iterator[tuple[RPC, int, str]]:
    port, topic = free_port(), "curve." + os.urandom(4).hex()
    server = serve(port, topic, zmq_curve_server_public_key=keys["server_public"],
                   zmq_curve_server_secret_key=keys["server_secret"],
                   zmq_curve_allowed_clients=[keys["client_public"]])
    try:
        yield server, port, topic
    finally:
        server.close()


def call(port: int, topic: str, **options: Any) -> str:
    client = zmq_rpc(port, zmq_receipt_timeout=0.5, **options)
    try:
        dest = client.make_destination(topic, host=SERVER_HOST)
        result: str = client.call({}, dest, {"method": "echo", "args": {"value": "hi"}},
                                  timeout=5)
        return result
    finally:
        client.close()


def test_an_allowed_client_is_served(guarded: tuple[RPC, int, str],
                                     keys: dict[str, str]) -> None:
    _, port, topic = guarded
    assert call(port, topic, zmq_curve_server_public_key=keys["server_public"],
                zmq_curve_client_secret_key=keys["client_secret"]) == "hi"


def test_other_clients_are_refused_and_counted(guarded: tuple[RPC, int, str],
                                               keys: dict[str, str]) -> None:
    server, port, topic = guarded
    stranger_public, stranger_secret = keypair()
    for options in ({"zmq_curve_server_public_key": keys["server_public"],
                     "zmq_curve_client_secret_key": stranger_secret},
                    {"zmq_curve_server_public_key": keys["server_public"]},  # ephemeral key
                    {}):                                                     # no CURVE at all
        start = time.monotonic()
        with pytest.raises(TransportError):
            call(port, topic, **options)
        assert time.monotonic() - start < 3
    stats = server.cell().stats
    end = time.monotonic() + 5
    while stats.get("zmq_bad_handshakes") < 3 and time.monotonic() < end:
        time.sleep(0.02)
    assert stats.get("zmq_bad_handshakes") >= 3
    assert stats.get("received") == 0


def test_bad_keys_are_config_errors(keys: dict[str, str]) -> None:
    port = free_port()
    client = zmq_rpc(port, zmq_curve_server_public_key="too-short")
    try:
        with pytest.raises(ConfigError, match="40 Z85 characters"):
            client.cast({}, client.make_destination("t", host=SERVER_HOST),
                        {"method": "m", "args": {}})
    finally:
        client.close()
    other_public, _ = keypair()
    server = zmq_rpc(port, zmq_bind_address=SERVER_HOST,
                     zmq_curve_server_public_key=other_public,
                     zmq_curve_server_secret_key=keys["server_secret"])
    try:
        with pytest.raises(ConfigError, match="does not belong") as info:
            server.serve(server.make_destination("t", host=SERVER_HOST), [Echo()]).start()
        assert keys["server_secret"] not in str(info.value)
    finally:
        server.close()
    # a process that serves needs the server secret key
    server = zmq_rpc(port, zmq_bind_address=SERVER_HOST,
                     zmq_curve_server_public_key=keys["server_public"])
    try:
        with pytest.raises(ConfigError, match="secret"):
            server.serve(server.make_destination("t", host=SERVER_HOST), [Echo()]).start()
        # and the address stays free for a correctly configured server
        good = serve(port, "t", zmq_curve_server_public_key=keys["server_public"],
                     zmq_curve_server_secret_key=keys["server_secret"])
        good.close()
    finally:
        server.close()
