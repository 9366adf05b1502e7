"""Receivers that survive reconnects: :class:`IncomingLink` (I/O thread
only, see :mod:`rpccore_qpid.links`)."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Condition, Connection, Delivery, Link, Message, Session, Terminus

from rpccore.errors import RPCError, TransportError

from rpccore_qpid.connection import describe
from rpccore_qpid.links import LinkOwner, link_names, open_session

if TYPE_CHECKING:
    from rpccore_qpid.connection import IoLoop

LOG = logging.getLogger(__name__)


Deliver = Callable[["IncomingLink", Delivery, Message], None]


class IncomingLink(LinkOwner):
    """A receiver from one address, re-attached after every reconnect.

    ``credit`` bounds the messages delivered but not yet acknowledged
    (:meth:`io_settle`); ``auto_accept`` links (replies) accept each message as
    soon as ``deliver`` returns. ``ready`` is set once the first attach
    succeeded or failed (then ``error`` holds why).
    """

    def __init__(self, loop: IoLoop, address: str, credit: int, deliver: Deliver, *,
                 auto_accept: bool = False, temporary: bool = False) -> None:
        self.loop = loop
        self.address = address
        self.credit = credit
        self.deliver = deliver
        self.auto_accept = auto_accept
        self.temporary = temporary
        self.link: Link | None = None
        self.session: Session | None = None
        self.closing = False
        self.unacked = 0
        self.owed = 0                           # credit used up and not yet given back
        self.batch = max(1, credit // 4)        # ... given back this many at a time
        self.ready = threading.Event()
        self.error: RPCError | None = None
        #: deliveries handed to servers and not yet settled, by token: the
        #: proton objects never leave the I/O thread (a proton wrapper whose
        #: last reference drops on another thread decrefs its C object there,
        #: racing the reactor: heap corruption)
        self._held: dict[int, Delivery] = {}
        self._tokens = itertools.count(1)

    def io_start(self) -> None:
        self.loop.owners.add(self)
        if self.loop.conn is not None and self.loop.connected:
            self._attach(self.loop.conn)

    def _attach(self, conn: Connection) -> None:
        self.session = open_session(conn, self)
        link = self.session.receiver(f"rpccore-in-{next(link_names)}")
        link.source.address = self.address
        if self.temporary:
            # what AMQP 1.0 offers to say "remove my node when I detach"
            link.source.durability = Terminus.NONDURABLE
            link.source.expiry_policy = Terminus.EXPIRE_WITH_LINK
        link.rpccore_link = self
        link.open()
        self.link = link
        self.unacked = 0

    def io_opened(self, link: Link) -> None:
        if link != self.link:
            return
        if link.remote_source is None or link.remote_source.address is None:
            return  # refused; the detach with the reason follows
        self.owed = 0
        link.flow(self.credit)
        self.ready.set()

    def io_message(self, link: Link, dlv: Delivery, message: Message) -> None:
        if link != self.link or self.closing:
            dlv.update(Delivery.RELEASED)
            dlv.settle()
            return
        if self.auto_accept:
            try:
                self.deliver(self, dlv, message)
            finally:
                dlv.update(Delivery.ACCEPTED)
                dlv.settle()
                self._give_back(link)
            return
        self.unacked += 1
        self.deliver(self, dlv, message)

    def io_hold(self, dlv: Delivery) -> int:
        """Keep ``dlv`` here until :meth:`io_settle`; returns its token."""
        token = next(self._tokens)
        self._held[token] = dlv
        return token

    def io_settle(self, token: int, generation: int, outcome: Any) -> None:
        """Accept (``Delivery.ACCEPTED``) or release the delivered message
        held under ``token``."""
        dlv = self._held.pop(token, None)
        if (dlv is None or generation != self.loop.generation or self.link is None
                or dlv.settled):
            return  # its connection is gone; the broker redelivers it
        dlv.update(outcome)
        dlv.settle()
        self.unacked -= 1
        if not self.closing:
            self._give_back(self.link)
        elif self.unacked <= 0:
            self._end()

    def _give_back(self, link: Link) -> None:
        """Return one message's credit, in batches (fewer flow frames)."""
        self.owed += 1
        if self.owed >= self.batch:
            link.flow(self.owed)
            self.owed = 0

    def io_failed(self, cond: Condition | None, endpoint: Link | Session) -> None:
        if endpoint != self.link and endpoint != self.session:
            return
        first = not self.ready.is_set()
        self.link = self.session = None
        if self.closing:
            return
        if first:
            self.error = TransportError(f"cannot consume {self.address}: {describe(cond)}")
            self.ready.set()
            return
        LOG.warning("cell %s: the broker closed the receiver of %s (%s); re-attaching",
                    self.loop.cell.name, self.address, describe(cond))
        self.loop.schedule(1.0, self._retry)  # a delay keeps a refusal from spinning

    def _retry(self) -> None:
        if self.link is None and not self.closing and self.loop.conn is not None \
                and self.loop.connected:
            self._attach(self.loop.conn)

    def io_close(self) -> None:
        """Stop receiving; end the session once every delivered message is
        acknowledged (so in-flight requests are not redelivered elsewhere)."""
        self.closing = True
        self.loop.owners.discard(self)
        if self.link is not None:
            self.link.close()
        if self.unacked <= 0:
            self._end()

    def _end(self) -> None:
        if self.session is not None:
            self.session.close()
        self.link = self.session = None
        self._held.clear()

    def io_lost(self) -> None:
        self.link = self.session = None
        self.unacked = 0
        self._held.clear()  # the broker redelivers them

    def io_connected(self, conn: Connection) -> None:
        if not self.closing and self.error is None:
            self._attach(conn)

    def io_closed(self) -> None:
        self.closing = True
        self.ready.set()
