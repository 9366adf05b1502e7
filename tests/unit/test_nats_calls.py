"""The nats driver's reply inbox (no server needed): threaded calls wait on
a Completion; calls whose caller waits elsewhere (asyncio) are watched, and
their failures go to the caller's handler, once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore_nats.calls import HEARD, NOBODY, ReplyInbox


@dataclass
class Msg:
    subject: str
    data: bytes = b""
    headers: dict[str, str] | None = field(default=None)


NO_RESPONDERS = {"Status": "503"}

pytestmark = pytest.mark.asyncio


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


async def test_a_watched_call_reports_nobody_once_and_is_forgotten() -> None:
    inbox = ReplyInbox("_INBOX.x.")
    failures: list[RPCError] = []
    subject = inbox.watch(lambda body: False, failures.append, "t in cell c",
                          time.monotonic() + 5)
    await inbox.on_message(Msg(subject, headers=NO_RESPONDERS))
    await inbox.on_message(Msg(subject, headers=NO_RESPONDERS))
    assert len(failures) == 1 and isinstance(failures[0], Undeliverable)
    assert "t in cell c" in str(failures[0])


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
