"""The nats driver's reply inbox (no server needed): threaded calls wait on
a Completion; calls whose caller waits elsewhere (asyncio) are watched, and
their failures go to the caller's handler, once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore_nats.calls import HEARD, NOBODY, ReplyInbox
from rpccore_nats.loop import EventLoopThread, Outbox, OutboxItem


@dataclass
class Msg:
    subject: str
    data: bytes = b""
    headers: dict[str, str] | None = field(default=None)


NO_RESPONDERS = {"Status": "503"}


@pytest.mark.asyncio
async def test_a_threaded_call_hears_its_reply_or_nobody() -> None:
    inbox = ReplyInbox("_INBOX.x.")
    replies: list[bytes] = []
    subject, wait = inbox.expect(lambda body: replies.append(body) or False)
    await inbox.on_message(Msg(subject, b"reply"))
    assert replies == [b"reply"] and wait.wait(0) and wait.value == HEARD
    subject, wait = inbox.expect(lambda body: False)
    await inbox.on_message(Msg(subject, headers=NO_RESPONDERS))
    assert wait.wait(0) and wait.value == NOBODY
    subject, wait = inbox.expect(lambda body: False)
    inbox.fail(subject, TransportError("refused"))
    assert wait.wait(0) and isinstance(wait.error, TransportError)


@pytest.mark.asyncio
async def test_a_watched_call_reports_nobody_once_and_is_forgotten() -> None:
    inbox = ReplyInbox("_INBOX.x.")
    failures: list[RPCError] = []
    subject = inbox.watch(lambda body: False, failures.append, "t in cell c",
                          time.monotonic() + 5)
    await inbox.on_message(Msg(subject, headers=NO_RESPONDERS))
    await inbox.on_message(Msg(subject, headers=NO_RESPONDERS))
    assert len(failures) == 1 and isinstance(failures[0], Undeliverable)
    assert "t in cell c" in str(failures[0])


@pytest.mark.asyncio
async def test_a_watched_call_that_was_heard_reports_nothing() -> None:
    inbox = ReplyInbox("_INBOX.x.")
    failures: list[RPCError] = []
    replies: list[bytes] = []
    subject = inbox.watch(lambda body: replies.append(body) or True, failures.append, "t",
                          time.monotonic() + 5)
    await inbox.on_message(Msg(subject))  # the receipt
    await inbox.on_message(Msg(subject, b"reply"))
    inbox.fail(subject, TransportError("too late to matter"))
    assert replies == [b"reply"] and failures == []


@pytest.mark.asyncio
async def test_a_failed_publish_reaches_the_watcher_and_old_watches_expire() -> None:
    inbox = ReplyInbox("_INBOX.x.")
    failures: list[RPCError] = []
    subject = inbox.watch(lambda body: False, failures.append, "t", time.monotonic() + 5)
    inbox.fail(subject, ValueError("max payload"))
    assert len(failures) == 1 and isinstance(failures[0], TransportError)
    stale = inbox.watch(lambda body: False, failures.append, "t", time.monotonic() - 1)
    inbox.expire()
    await inbox.on_message(Msg(stale, headers=NO_RESPONDERS))
    assert len(failures) == 1


def test_the_outbox_publishes_in_order_and_completes_what_a_sender_waits_for() -> None:
    loop_thread = EventLoopThread("test-outbox")
    sent: list[tuple[str, bytes, str]] = []
    errors: list[OutboxItem] = []

    async def publish(subject: str, body: bytes, reply: str) -> None:
        if subject == "refused":
            raise ValueError("max payload")
        sent.append((subject, body, reply))

    outbox = Outbox(loop_thread, publish, lambda item, exc: errors.append(item))
    loop_thread.call_soon(outbox.start)
    try:
        handed: Completion[None] = Completion()
        refused: Completion[None] = Completion()
        for i in range(100):
            outbox.put((f"s{i}", b"x", ""))
        outbox.put(("s100", b"y", "r", handed))
        outbox.put(("refused", b"z", "r2", refused))
        assert handed.wait(5) and refused.wait(5)
        assert [s for s, _, _ in sent] == [f"s{i}" for i in range(101)]
        assert sent[-1] == ("s100", b"y", "r") and len(errors) == 1
        assert loop_thread.run(outbox.flush(), 5) is None and len(outbox) == 0
    finally:
        loop_thread.stop()
