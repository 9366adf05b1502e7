"""Calls: request/reply over one shared inbox per driver.

Every call is published with a reply subject ``<inbox>.<token>``; one
wildcard subscription ``<inbox>.*`` takes every reply of every call of the
cell and hands it to the cell's reply handler, in the order the server sent
them (one subscription is read in order). The core correlates by the
request id inside the envelope; the token only serves the driver:

- NATS answers a request that no subscriber took with an empty message
  whose header says ``Status: 503`` ("no responders") on the reply subject;
  the token tells which call it was, and :meth:`ReplyInbox.wait` raises
  :class:`~rpccore.Undeliverable` for it.
- A plain cast is published with the reply subject ``<inbox>.~``
  (:data:`CAST_TOKEN`; call tokens are digits): nobody answers a cast, but
  NATS's "no responders" comes there when no server took it, and the cast
  is counted as ``returned`` and logged.
- A server's driver sends an empty *receipt* on the reply subject of a call
  that has not been answered within :data:`RECEIPT_AFTER` seconds: the
  caller's ``send`` returns on whichever comes first, the first reply or
  the receipt, so it knows that someone took the request without costing
  quick calls anything (their reply comes first).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.driver import ReplyHandler

if TYPE_CHECKING:
    from nats.aio.msg import Msg

#: Seconds after which a server's driver confirms receipt of a call it has
#: not answered yet.
RECEIPT_AFTER = 0.02

HEARD, NOBODY = "heard", "nobody"

#: The reply token of plain casts (see the module docstring).
CAST_TOKEN = "~"

LOG = logging.getLogger(__name__)


class CallWait:
    """What one ``send`` of a call waits for: heard (a reply or a receipt),
    nobody (no responders), or an error from the loop."""

    __slots__ = ("_ready", "outcome")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self.outcome: str | BaseException | None = None

    def finish(self, outcome: str | BaseException) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self._ready.release()

    def wait(self, timeout: float) -> str | BaseException | None:
        """The outcome, or ``None`` after ``timeout`` seconds."""
        if self._ready.acquire(timeout=max(timeout, 0.0)):
            return self.outcome
        return None


class ReplyInbox:
    """The driver's reply subscription (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        #: ``_INBOX.<unique>.``: a token is appended per call
        self.prefix = prefix
        self._plen = len(prefix)
        self._tokens = itertools.count()
        self._waits: dict[str, CallWait] = {}
        self.handler: ReplyHandler | None = None
        #: called (loop thread) when a plain cast found nobody
        self.on_returned: Callable[[], None] = lambda: None
        #: the reply subject plain casts carry
        self.cast_reply = prefix + CAST_TOKEN

    @property
    def wildcard(self) -> str:
        return self.prefix + "*"

    def expect(self, on_reply: ReplyHandler) -> tuple[str, CallWait]:
        """A fresh reply subject and what ``send`` waits on (any thread)."""
        self.handler = on_reply  # the core passes one handler per cell
        token = str(next(self._tokens))
        wait = CallWait()
        self._waits[token] = wait
        return self.prefix + token, wait

    def fail(self, reply_subject: str, error: BaseException) -> None:
        """The call published to ``reply_subject`` could not be sent."""
        wait = self._waits.get(reply_subject[self._plen:])
        if wait is not None:
            wait.finish(error)

    def forget(self, reply_subject: str) -> None:
        self._waits.pop(reply_subject[self._plen:], None)

    async def on_message(self, msg: Msg) -> None:
        """Every message on the inbox (loop thread)."""
        data = msg.data
        wait = self._waits.get(msg.subject[self._plen:])
        if data:
            handler = self.handler
            if handler is not None:
                try:
                    handler(data)  # first: a woken sender finds its reply handed on
                except Exception:  # the core's handler: never stop the inbox
                    LOG.exception("handing a reply to rpccore failed")
            if wait is not None:
                wait.finish(HEARD)
            return
        if wait is None:
            if msg.subject == self.cast_reply and msg.headers \
                    and msg.headers.get("Status") == "503":
                self.on_returned()
            return  # a receipt after the reply, or for a caller gone
        headers = msg.headers
        if headers and headers.get("Status") == "503":
            wait.finish(NOBODY)
        else:
            wait.finish(HEARD)
