"""Hostile input on a zmq server's port: it keeps serving and counts it.

Raw TCP noise (the ZMTP handshake fails), idle connections, and a ZMQ peer
sending wrong frame counts, empty frames, garbage headers, bad UTF-8,
envelopes over ``max_message_size`` and frames over the socket's MAXMSGSIZE.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from rpccore import RPC
from rpccore.testing import wait_until
from rpccore_zmq import protocol
from rpccore_zmq.testing import free_port, zmq_rpc

HOST = "127.0.0.2"
MAX_SIZE = 8192


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


@pytest.fixture
def served() -> Iterator[tuple[RPC, RPC, int, str]]:
    port = free_port()
    topic = "hostile." + os.urandom(4).hex()
    server = zmq_rpc(port, zmq_bind_address=HOST, max_message_size=MAX_SIZE)
    client = zmq_rpc(port, max_message_size=MAX_SIZE)
    try:
        server.serve(server.make_destination(topic, host=HOST), [Adder()]).start()
        yield server, client, port, topic
    finally:
        client.close()
        server.close()


def still_answers(client: RPC, topic: str) -> None:
    dest = client.make_destination(topic, host=HOST)
    assert client.call({}, dest, {"method": "add", "args": {"a": 2, "b": 3}}, timeout=5) == 5


def test_raw_tcp_noise_and_idle_connections(served: tuple[RPC, RPC, int, str]) -> None:
    server, client, port, topic = served
    still_answers(client, topic)
    idle = socket.create_connection((HOST, port))  # connects, never speaks
    noises = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff" + bytes(8) + b"\x7fjunk" * 20,
              bytes(range(256)) * 8, os.urandom(4096)]
    for noise in noises:
        with socket.create_connection((HOST, port)) as sock:
            sock.sendall(noise)
            sock.settimeout(2)
            try:
                while sock.recv(4096):  # until libzmq hangs up on us
                    pass
            except OSError:
                pass
        still_answers(client, topic)
    stats = server.cell().stats
    assert wait_until(lambda: stats.get("zmq_bad_handshakes") >= 2), stats.snapshot()
    idle.close()
    still_answers(client, topic)


def test_bad_frames_are_dropped_and_counted(served: tuple[RPC, RPC, int, str]) -> None:
    server, client, port, topic = served
    ctx = zmq.Context()
    peer = ctx.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    try:
        peer.connect(f"tcp://{HOST}:{port}")
        def call(envelope: bytes) -> bytes:
            return protocol.request(protocol.CALL, 1, topic.encode(), HOST.encode(), envelope)

        bad = [
            [b"garbage"],
            [b""],
            [b"", b"", b""],
            [b"\x00" * 5000],
            [call(b"")],                                   # no envelope
            [call(b"{}"), b"extra"],                       # one frame too many
            [call(b"{}")[:30]],                            # cut inside the topic
            [protocol.header(b"?", 1) + b"{}"],            # unknown kind
            [protocol.request(protocol.CAST, 2, b"\xff\xfe", b"", b"{}")],  # not UTF-8
            [call(b"x" * (MAX_SIZE + 1))],                 # over max_message_size
        ]
        for frames in bad:
            peer.send_multipart(frames)
        stats = server.cell().stats
        assert wait_until(lambda: stats.get("dropped_malformed") >= len(bad)), stats.snapshot()
        assert stats.get("dropped_oversize") == 1
        still_answers(client, topic)

        # a well-formed request whose envelope is garbage reaches the core,
        # which drops and counts it too; the peer gets a receipt (it was taken)
        peer.send_multipart([call(b"not json at all")])
        assert wait_until(lambda: stats.get("dropped_malformed") >= len(bad) + 1)
        assert peer.poll(5000)
        kind, _ = protocol.parse_header(peer.recv_multipart()[0])
        assert kind == protocol.RECEIPT

        # frames far over MAXMSGSIZE: libzmq cuts that peer off
        peer.send_multipart([call(b"x" * (MAX_SIZE * 10))])
        still_answers(client, topic)
        assert stats.get("received") >= 2
    finally:
        peer.close(linger=0)
        ctx.term()


def test_a_flood_of_garbage_does_not_stall_calls(served: tuple[RPC, RPC, int, str]) -> None:
    server, client, port, topic = served
    ctx = zmq.Context()
    peer = ctx.socket(zmq.DEALER)
    peer.setsockopt(zmq.LINGER, 0)
    try:
        peer.setsockopt(zmq.SNDTIMEO, 10000)
        peer.connect(f"tcp://{HOST}:{port}")
        for i in range(5000):
            peer.send_multipart([os.urandom(i % 40 + 1), os.urandom(i % 7)])
        start = time.monotonic()
        still_answers(client, topic)
        assert time.monotonic() - start < 5
        stats = server.cell().stats
        assert wait_until(lambda: stats.get("dropped_malformed") >= 5000), stats.snapshot()
        still_answers(client, topic)
    finally:
        peer.close(linger=0)
        ctx.term()
