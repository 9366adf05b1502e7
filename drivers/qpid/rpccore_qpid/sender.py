"""Senders that survive reconnects: :class:`OutgoingLink` and the
:class:`Outgoing` messages queued on it (I/O thread only, see
:mod:`rpccore_qpid.links`)."""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from proton import Condition, Connection, Delivery, Link, Session

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_qpid.links import LinkOwner, describe, link_names, open_session

if TYPE_CHECKING:
    from rpccore_qpid.connection import IoLoop

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)
NOT_FOUND = "amqp:not-found"
#: Senders to these addresses first check that the queue exists.
PROBED_PREFIX = "/amq/queue/"
#: ``refused(outcome, address)``: see :class:`Outgoing`
Refused = Callable[[str, str], "RPCError | None"]


class Outgoing:
    """One message on its way, and whoever waits for its fate.

    ``future`` (if any) completes when the message is written (``settle``
    False) or when the broker accepted it (``settle`` True); with the error
    otherwise (a waiter that gave up abandons it first: the outcome is then
    ignored). ``release`` is called exactly once when the message is done.

    ``refused(outcome, address)`` (I/O thread) says what the broker's
    ``rejected`` or ``released`` outcome means: the error to finish with, or
    None when that outcome is final and no error (notifications); unset, it
    is :class:`Undeliverable`. ``durable`` sets the AMQP ``durable`` header
    (the broker writes the message to disk in a durable queue).
    """

    __slots__ = ("body", "reply_to", "expires", "durable", "deadline", "future", "settle",
                 "release", "returned", "refused", "done")

    def __init__(self, body: bytes, deadline: float | None, future: Completion[None] | None,
                 settle: bool, release: Callable[[], None],
                 returned: Callable[[str], None], *, reply_to: str | None = None,
                 expires: bool = False, durable: bool = False,
                 refused: Refused | None = None) -> None:
        self.body = body
        self.reply_to = reply_to
        self.expires = expires      # the broker may drop it once the deadline passed
        self.durable = durable
        self.refused = refused
        self.deadline = deadline
        self.future = future
        self.settle = settle
        self.release = release
        self.returned = returned
        self.done = False

    def written(self) -> None:
        if self.future is not None and not self.settle:
            self.future.set_result(None)  # ignored once completed

    def finish(self, error: RPCError | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.release()
        if self.future is not None:
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_error(error)
        elif isinstance(error, Undeliverable):
            self.returned(str(error))
        elif error is not None:
            _RATELOG.warning("cast", "a message was dropped: %s", error)


class OutgoingLink(LinkOwner):
    """A sender to one address, attached on demand, messages queued meanwhile.

    Messages the broker had not acknowledged when the connection dropped are
    sent again after reconnecting (at-least-once), unless past their deadline.
    An address the broker refuses fails every waiting message with
    :class:`Undeliverable` (``amqp:not-found``) or :class:`TransportError`,
    and the link forgets itself (``on_gone``) so the next send tries anew.
    """

    def __init__(self, loop: IoLoop, address: str,
                 on_gone: Callable[[OutgoingLink], None], ready: set[str]) -> None:
        self.loop = loop
        self.address = address
        self.on_gone = on_gone
        self.ready = ready
        self.link: Link | None = None
        self.session: Session | None = None
        self._state = "idle"
        self.pending: collections.deque[Outgoing] = collections.deque()
        self.unsettled: dict[int, Outgoing] = {}

    @property
    def state(self) -> str:
        """idle, probing, attaching, open or gone; ``ready`` holds the
        addresses whose link is open (read by other threads)."""
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        self._state = value
        if value == "open":
            self.ready.add(self.address)
        else:
            self.ready.discard(self.address)

    @property
    def busy(self) -> bool:
        return bool(self.pending or self.unsettled) or self.state in ("probing", "attaching")

    def io_submit(self, item: Outgoing) -> None:
        if self.state == "gone":
            item.finish(TransportError(f"sender to {self.address} is closed"))
            return
        self.pending.append(item)
        if self.state == "open":
            self._flush()
        elif self.state == "idle" and self.loop.conn is not None and self.loop.connected:
            self._attach(self.loop.conn)

    def _attach(self, conn: Connection) -> None:
        self.session = open_session(conn, self)
        link: Link
        if self.address.startswith(PROBED_PREFIX):
            # RabbitMQ accepts a sender to a queue that does not exist (and
            # drops what it sends), but refuses a receiver: so probe with a
            # receiver that is given no credit, then attach the sender.
            link = self.session.receiver(f"rpccore-probe-{next(link_names)}")
            link.source.address = self.address
            self.state = "probing"
        else:
            link = self.session.sender(f"rpccore-out-{next(link_names)}")
            link.target.address = self.address
            self.state = "attaching"
        link.rpccore_link = self
        link.open()
        self.link = link

    def io_opened(self, link: Link) -> None:
        if link != self.link:
            return
        if self.state == "probing":
            if link.remote_source is None or link.remote_source.address is None:
                return  # the broker refused it; its detach with the reason follows
            # the queue exists: a fresh session for the sender (closing one
            # link alone can hang on this broker, ending its session cannot)
            self._drop_link()
            conn = self.loop.conn
            if conn is None:
                self.state = "idle"
                return
            self.session = open_session(conn, self)
            sender = self.session.sender(f"rpccore-out-{next(link_names)}")
            sender.target.address = self.address
            sender.rpccore_link = self
            sender.open()
            self.link = sender
            self.state = "attaching"
            return
        if self.state != "attaching":
            return
        if link.remote_target is None or link.remote_target.address is None:
            return  # the broker refused it; its detach with the reason follows
        self.state = "open"
        self._flush()

    def io_sendable(self, link: Link) -> None:
        if link == self.link and self.state == "open":
            self._flush()

    def _flush(self) -> None:
        link = self.link
        assert link is not None
        pending = self.pending
        message = self.loop.message  # one Message, reused: encoded by send()
        now = time.monotonic()
        while pending and link.credit > 0:
            item = pending.popleft()
            if item.deadline is not None and item.deadline < now:
                item.finish(TransportError(f"not sent to {self.address} before its deadline"))
                continue
            message.clear()
            message.body = item.body
            if item.reply_to is not None:
                message.reply_to = item.reply_to
            if item.expires and item.deadline is not None:
                message.ttl = max(0.001, item.deadline - now)
            if item.durable:
                message.durable = True
            dlv = link.send(message)
            dlv.rpccore_item = item
            self.unsettled[id(item)] = item
            item.written()

    def io_outcome(self, dlv: Delivery, accepted: bool, why: str = "") -> None:
        item = getattr(dlv, "rpccore_item", None)
        if item is None or self.unsettled.pop(id(item), None) is None:
            return
        if accepted:
            item.finish()
        elif item.refused is not None:
            item.finish(item.refused(why, self.address))
        else:
            item.finish(Undeliverable(f"the broker {why} the message to {self.address}"))

    def io_failed(self, cond: Condition | None, endpoint: Link | Session) -> None:
        if endpoint != self.link and endpoint != self.session:
            return
        was = self.state
        self._drop_link()
        waiting = list(self.unsettled.values()) + list(self.pending)
        self.unsettled.clear()
        self.pending.clear()
        if cond is not None and cond.name == NOT_FOUND:
            error: RPCError = Undeliverable(f"nobody consumes {self.address}: {describe(cond)}")
        else:
            error = TransportError(f"the broker closed the sender to {self.address}: "
                                   f"{describe(cond)}")
        if was == "open":
            LOG.info("cell %s: sender to %s closed by the broker: %s",
                     self.loop.cell.name, self.address, describe(cond))
        for item in waiting:
            item.finish(error)
        self.state = "gone"
        self.on_gone(self)

    def _drop_link(self) -> None:
        for endpoint in (self.link, self.session):
            if endpoint is not None:
                endpoint.rpccore_link = None
                try:
                    endpoint.close()
                except Exception:
                    pass
        self.link = self.session = None

    def io_close_idle(self) -> None:
        """Close the link; only used when it has nothing waiting."""
        self._drop_link()
        self.state = "gone"
        self.on_gone(self)

    def io_lost(self) -> None:
        self.link = self.session = None
        if self.state != "gone":
            self.state = "idle"
        again = list(self.unsettled.values())
        self.unsettled.clear()
        self.pending.extendleft(reversed(again))

    def io_connected(self, conn: Connection) -> None:
        if self.state == "idle" and self.pending:
            self._attach(conn)

    def io_closed(self) -> None:
        waiting = list(self.unsettled.values()) + list(self.pending)
        self.unsettled.clear()
        self.pending.clear()
        self.state = "gone"
        for item in waiting:
            item.finish(TransportError("the qpid driver was closed"))
