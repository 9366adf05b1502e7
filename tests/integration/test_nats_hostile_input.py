"""Garbage published with a raw nats-py client straight onto the nats
driver's subjects, bypassing rpccore: the topic, host and fanout subjects,
the confirmed casts' JetStream subject, a JetStream delivery subject and a
caller's reply inbox. Servers and callers survive, count every bad message,
log without flooding, and keep answering."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import nats
import pytest

from private_nats import NATS_URL, delete_streams
from rpccore.testing import single_cell_rpc, wait_until
from rpccore_nats.naming import Subjects

GARBAGE: list[bytes] = [
    b"", b"\x00\xff\xfe garbage", b"[]", b"null", b'{"v": 1}', b"{" * 10_000,
    json.dumps({"v": 7, "id": "x", "kind": "call"}).encode(),
    json.dumps({"v": 1, "id": "x", "kind": "call", "method": 5, "args": {}, "ctx": {}}).encode(),
    json.dumps({"v": 1, "id": "x", "kind": "reply", "re": "nobody"}).encode(),
] + [os.urandom(64) for _ in range(31)]


class Echo:
    def echo(self, ctx: dict[str, object], value: object) -> object:
        return value


async def _publish(subjects: list[tuple[str, str]], bodies: list[bytes]) -> None:
    client = await nats.connect(NATS_URL)
    try:
        for subject, reply in subjects:
            for body in bodies:
                await client.publish(subject, body, reply=reply)
        await client.flush()
    finally:
        await client.close()


async def _snoop_reply_subject(subject: str, started: asyncio.Event,
                               found: asyncio.Future[str]) -> None:
    """The reply subject of the next request on ``subject`` (a plain
    subscriber gets a copy of what the queue group shares)."""
    client = await nats.connect(NATS_URL)
    try:
        sub = await client.subscribe(subject)
        await client.flush()
        started.set()
        msg = await sub.next_msg(timeout=20)
        found.set_result(msg.reply)
    finally:
        await client.close()


def test_garbage_on_every_subject_is_counted_and_survived(
        caplog: pytest.LogCaptureFixture) -> None:
    exchange, topic = f"hostile-{os.urandom(4).hex()}", "victim.topic"
    subjects = Subjects(exchange)
    server = single_cell_rpc(NATS_URL, control_exchange=exchange)
    client = single_cell_rpc(NATS_URL, control_exchange=exchange)
    caplog.set_level(logging.WARNING)
    try:
        server.serve(server.make_destination(topic, host="h"), [Echo()]).start()
        reply_to = _reply_subject_of_a_call(client, subjects.work(topic), topic)
        inbox_prefix = reply_to.rpartition(".")[0] + "."
        consumer = Subjects.consumer(subjects.confirmed_work(topic))
        targets: list[tuple[str, str]] = [
            (subjects.work(topic), ""), (subjects.direct(topic, "h"), ""),
            (subjects.fanout(topic), ""), (subjects.confirmed_work(topic), ""),
            (Subjects.deliver_subject(subjects.cast_stream, consumer), ""),
            (subjects.work(topic), "_INBOX.somebody.1"),  # asks for replies too
        ]
        asyncio.run(_publish(targets, GARBAGE))
        asyncio.run(_publish([(inbox_prefix + "4242", ""), (reply_to, "")], GARBAGE))
        stats = server.cell().stats
        expected = len(targets) * len(GARBAGE)
        assert wait_until(lambda: stats.get("dropped_malformed") >= expected, 20), \
            (expected, stats.snapshot())
        time.sleep(0.3)
        assert stats.get("dropped_malformed") == expected, stats.snapshot()
        assert stats.get("received") == 1  # the snooped call
        # every non-empty body on the inbox is counted by the caller's cell
        client_stats = client.cell().stats
        on_inbox = 2 * sum(1 for body in GARBAGE if body)
        assert wait_until(lambda: client_stats.get("dropped_malformed")
                          + client_stats.get("late_replies") == on_inbox, 10), \
            client_stats.snapshot()
        for rpc in (client, server):
            assert rpc.call({}, topic, {"method": "echo", "args": {"value": "still here"}},
                            timeout=10) == "still here"
    finally:
        client.close()
        server.close()
        delete_streams([subjects.cast_stream])
    noisy = [r for r in caplog.records if r.name.startswith("rpccore")]
    assert 1 <= len(noisy) <= 12, [r.getMessage() for r in noisy]


def _reply_subject_of_a_call(client: Any, work_subject: str, topic: str) -> str:
    async def run() -> str:
        started = asyncio.Event()
        found: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        snoop = asyncio.create_task(_snoop_reply_subject(work_subject, started, found))
        await started.wait()
        answer = await asyncio.to_thread(
            client.call, {}, topic, {"method": "echo", "args": {"value": 1}}, timeout=10)
        assert answer == 1
        await snoop
        return found.result()

    return asyncio.run(run())


def test_a_plain_cast_nobody_takes_is_counted_as_returned(
        caplog: pytest.LogCaptureFixture) -> None:
    rpc = single_cell_rpc(NATS_URL, control_exchange=f"nobody-{os.urandom(4).hex()}")
    caplog.set_level(logging.WARNING)
    try:
        for _ in range(3):
            rpc.cast({}, "nobody.here", {"method": "m", "args": {}})
        stats = rpc.cell().stats
        assert wait_until(lambda: stats.get("returned") == 3, 10), stats.snapshot()
    finally:
        rpc.close()
    assert any("no server consumes" in r.getMessage() for r in caplog.records)
