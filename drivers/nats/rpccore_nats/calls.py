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
- A caller that waits elsewhere (asyncio:
  :data:`rpccore.driver.caller_elsewhere`) does not wait for a reply in
  ``send``: its token is *watched* (:meth:`ReplyInbox.watch`), and "no responders" or a
  publish that failed goes to the caller's failure handler instead. A
  watch that heard nothing by the call's deadline is dropped
  (:meth:`ReplyInbox.expire`): the core times the call out itself.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.driver import ReplyHandler
from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable

if TYPE_CHECKING:
    from nats.aio.msg import Msg

#: Seconds after which a server's driver confirms receipt of a call it has
#: not answered yet.
RECEIPT_AFTER = 0.02

HEARD, NOBODY = "heard", "nobody"

#: The reply token of plain casts (see the module docstring).
CAST_TOKEN = "~"

LOG = logging.getLogger(__name__)


#: What one threaded ``send`` of a call waits for: heard (a reply or a
#: receipt) or nobody (no responders) as the result, or an error from the loop.
CallWait = Completion[str]


class Watch:
    """A call whose caller waits elsewhere: where its failure goes, and
    until when it is worth keeping."""

    __slots__ = ("late", "what", "until")

    def __init__(self, late: Callable[[RPCError], None], what: str, until: float) -> None:
        self.late = late
        #: the destination, for the error's message
        self.what = what
        self.until = until

    def finish(self, outcome: str | BaseException) -> None:
        if outcome == NOBODY:
            self.late(Undeliverable(f"nobody consumes {self.what}"))
        elif isinstance(outcome, RPCError):
            self.late(outcome)
        elif isinstance(outcome, BaseException):
            self.late(TransportError(f"sending to {self.what} failed: {outcome}"))


class ReplyInbox:
    """The driver's reply subscription (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        #: ``_INBOX.<unique>.``: a token is appended per call
        self.prefix = prefix
        self._plen = len(prefix)
        self._tokens = itertools.count()
        self._waits: dict[str, CallWait | Watch] = {}
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
        wait: CallWait = Completion()
        self._waits[token] = wait
        return self.prefix + token, wait

    def watch(self, on_reply: ReplyHandler, late: Callable[[RPCError], None],
              what: str, until: float) -> str:
        """A fresh reply subject for a call whose caller waits elsewhere
        (any thread): a failure goes to ``late``; ``what`` names the
        destination; ``until``: the call's deadline (monotonic)."""
        self.handler = on_reply
        token = str(next(self._tokens))
        self._waits[token] = Watch(late, what, until)
        return self.prefix + token

    def fail(self, reply_subject: str, error: BaseException) -> None:
        """The call published to ``reply_subject`` could not be sent."""
        token = reply_subject[self._plen:]
        wait = self._waits.get(token)
        if wait is not None:
            self._finish(token, wait, error)

    def _finish(self, token: str, wait: CallWait | Watch, outcome: str | BaseException) -> None:
        if type(wait) is Watch:
            if self._waits.pop(token, None) is not None:  # once only
                wait.finish(outcome)
        elif isinstance(outcome, BaseException):
            wait.set_error(outcome)  # type: ignore[union-attr]
        else:
            wait.set_result(outcome)  # type: ignore[union-attr]

    def expire(self) -> None:
        """Drop the watches whose calls are past their deadlines (loop thread)."""
        now = time.monotonic()
        for token, wait in list(self._waits.items()):
            if type(wait) is Watch and wait.until < now:
                self._waits.pop(token, None)

    def forget(self, reply_subject: str) -> None:
        self._waits.pop(reply_subject[self._plen:], None)

    async def on_message(self, msg: Msg) -> None:
        """Every message on the inbox (loop thread)."""
        data = msg.data
        token = msg.subject[self._plen:]
        wait = self._waits.get(token)
        if data:
            handler = self.handler
            if handler is not None:
                try:
                    handler(data)  # first: a woken sender finds its reply handed on
                except Exception:  # the core's handler: never stop the inbox
                    LOG.exception("handing a reply to rpccore failed")
            if wait is not None:
                self._finish(token, wait, HEARD)
            return
        if wait is None:
            if msg.subject == self.cast_reply and msg.headers \
                    and msg.headers.get("Status") == "503":
                self.on_returned()
            return  # a receipt after the reply, or for a caller gone
        headers = msg.headers
        self._finish(token, wait, NOBODY if headers and headers.get("Status") == "503" else HEARD)
