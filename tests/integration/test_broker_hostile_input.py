"""Garbage published straight onto a server's queue, bypassing rpccore: the
server survives, counts every bad message, logs without flooding, and keeps
answering calls. Raw kombu for rabbit, raw proton for qpid (AMQP 1.0)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import kombu
import pytest
from proton import Message
from proton.utils import BlockingConnection

from rpccore.testing import single_cell_rpc
from rpccore_qpid import addressing as qpid_addressing
from rpccore_qpid.layout import V1Layout
from rpccore_rabbit import addressing as rabbit_addressing

GARBAGE: list[bytes] = [
    b"", b"\x00\xff\xfe garbage", b"[]", b"null", b'{"v": 1}', b"{" * 10_000,
    json.dumps({"v": 7, "id": "x", "kind": "call"}).encode(),
    json.dumps({"v": 1, "id": "x", "kind": "call", "method": 5, "args": {}, "ctx": {}}).encode(),
    b"x" * (1024 * 1024 + 1),   # over max_message_size
] + [os.urandom(64) for _ in range(41)]


class Echo:
    def echo(self, ctx: dict[str, object], value: object) -> object:
        return value


def publish_rabbit(exchange: str, topic: str, bodies: list[bytes]) -> None:
    with kombu.Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        producer = conn.Producer(serializer=None)
        for body in bodies:
            producer.publish(body, exchange=rabbit_addressing.exchange_name(exchange),
                             routing_key=rabbit_addressing.work_key(topic),
                             content_type="application/octet-stream", content_encoding="binary")


def publish_qpid(exchange: str, topic: str, bodies: list[bytes]) -> None:
    conn = BlockingConnection("amqp://127.0.0.1:5672", user="guest", password="guest",
                              allowed_mechs="PLAIN", timeout=10)
    try:
        queue = qpid_addressing.work_queue(exchange, topic)
        sender = conn.create_sender(V1Layout().queue_target(queue))  # the 3.10 broker
        for body in bodies:
            sender.send(Message(body=body))
        sender.send(Message(body="a string body, not bytes"))
        sender.send(Message(body={"a": "map"}))
    finally:
        conn.close()


DRIVERS: dict[str, tuple[str, Callable[[str, str, list[bytes]], None], int]] = {
    "rabbit": ("rabbit://guest:guest@127.0.0.1:5672/", publish_rabbit, len(GARBAGE)),
    "qpid": ("qpid://guest:guest@127.0.0.1:5672/", publish_qpid, len(GARBAGE) + 2),
}


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_garbage_on_a_queue_is_counted_and_survived(driver: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    url, publish, expected = DRIVERS[driver]
    exchange, topic = f"hostile-{os.urandom(4).hex()}", "victim.topic"
    rpc = single_cell_rpc(url, control_exchange=exchange)
    caplog.set_level(logging.WARNING)
    try:
        rpc.serve(rpc.make_destination(topic, host="h"), [Echo()]).start()
        publish(exchange, topic, GARBAGE)
        stats = rpc.cell().stats
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stats.get("dropped_malformed") < expected:
            time.sleep(0.05)
        dropped = stats.get("dropped_malformed") + stats.get("dropped_oversize")
        assert dropped == expected, stats.snapshot()
        assert stats.get("received") == 0
        assert rpc.call({}, topic, {"method": "echo", "args": {"value": "still here"}},
                        timeout=10) == "still here"
    finally:
        rpc.close()
    # logged, but not one line per bad message
    noisy = [r for r in caplog.records if r.name.startswith("rpccore")]
    assert 1 <= len(noisy) <= 10, [r.getMessage() for r in noisy]
