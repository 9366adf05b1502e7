"""Receivers that survive reconnects: :class:`IncomingLink` (I/O thread
only, see :mod:`rpccore_qpid.links`).

Before every attach a receiver learns its :class:`~rpccore_qpid.layout.Node`
again (a fanout queue gets a new name on every connection) and, with v2
addresses, has the management node declare it first."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Condition, Connection, Delivery, Link, Message, Session, Terminus

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError
from rpccore_qpid.layout import Node, Request, refusal
from rpccore_qpid.links import LinkOwner, describe, link_names, open_session

if TYPE_CHECKING:
    from rpccore_qpid.connection import IoLoop

LOG = logging.getLogger(__name__)


Deliver = Callable[["IncomingLink", Delivery, Message], None]
#: statuses of the management node that mean done
_OK = (200, 201, 204)
#: ``inequivalent arg 'x-max-length' for queue 'NAME' ...: received '3' but current is '2'``
_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<arg>[^']+)'")
#: queues already warned about (one warning per queue and process)
_WARNED: set[str] = set()


def _tolerated(request: Request, status: int, body: object) -> bool:
    """Whether a refused declaration only differs in arguments the request
    tolerates (then the queue is used as it is, with one warning)."""
    found = _INEQUIVALENT.search(str(body)) if status == 409 else None
    if found is None or found["arg"] not in request.tolerated:
        return False
    if request.path not in _WARNED:
        _WARNED.add(request.path)
        LOG.warning("qpid: %s; this process asks for other values: the queue is used as it "
                    "is. To change them, delete the queue at a quiet moment (rabbitmqctl "
                    "delete_queue; what it holds is lost) or use one setting everywhere",
                    body)
    return True


class IncomingLink(LinkOwner):
    """A receiver of the node ``node_of()`` gives, re-attached after every
    reconnect.

    ``credit`` bounds the messages delivered but not yet acknowledged
    (:meth:`io_settle`); ``auto_accept`` links (replies) accept each message as
    soon as ``deliver`` returns. ``ready`` completes once the first attach
    succeeded or failed (then ``error`` holds why).
    """

    def __init__(self, loop: IoLoop, node_of: Callable[[], Node], credit: int,
                 deliver: Deliver, *, auto_accept: bool = False) -> None:
        self.loop = loop
        self.node_of = node_of
        self.node: Node | None = None
        self.credit = credit
        self.deliver = deliver
        self.auto_accept = auto_accept
        self.declaring = False
        self.link: Link | None = None
        self.session: Session | None = None
        self.closing = False
        self.unacked = 0
        self.owed = 0                           # credit used up and not yet given back
        self.batch = max(1, credit // 4)        # ... given back this many at a time
        self.ready: Completion[None] = Completion()
        self.error: RPCError | None = None
        #: deliveries handed to servers and not yet settled, by token: the
        #: proton objects never leave the I/O thread (a proton wrapper whose
        #: last reference drops on another thread decrefs its C object there,
        #: racing the reactor: heap corruption)
        self._held: dict[int, Delivery] = {}
        self._tokens = itertools.count(1)

    @property
    def address(self) -> str:
        """The source address of the current node (for logs and errors)."""
        return self.node.address if self.node is not None else "(not attached yet)"

    def io_start(self) -> None:
        self.loop.owners.add(self)
        if self.loop.conn is not None and self.loop.connected:
            self._attach(self.loop.conn)

    def _attach(self, conn: Connection) -> None:
        if self.declaring:
            return
        node = self.node = self.node_of()
        if node.requests:
            self._declare(conn, node, list(node.requests))
            return
        self._open_link(conn, node)

    def _open_link(self, conn: Connection, node: Node) -> None:
        self.session = open_session(conn, self)
        link = self.session.receiver(f"rpccore-in-{next(link_names)}")
        link.source.address = node.address
        if node.durable_source:
            # RabbitMQ 3.x's plugin declares the queue durable then
            link.source.durability = Terminus.CONFIGURATION
            link.source.expiry_policy = Terminus.EXPIRE_NEVER
        link.rpccore_link = self
        link.open()
        self.link = link
        self.unacked = 0

    def _declare(self, conn: Connection, node: Node, requests: list[Request]) -> None:
        """Have the management node make ``node`` (one request after the
        other), then attach to it."""
        if not requests:
            self.declaring = False
            if conn == self.loop.conn and not self.closing:
                self._open_link(conn, node)
            return
        self.declaring = True
        request = requests[0]

        def answered(status: int, body: object) -> None:
            if conn != self.loop.conn or self.closing:
                self.declaring = False
                return
            if status in _OK or _tolerated(request, status, body):
                self._declare(conn, node, requests[1:])
                return
            self.declaring = False
            self._refused(node, f"{request.method} {request.path}: {status} {body}")

        self.loop.management.io_request(request, answered)

    def _refused(self, node: Node, why: str) -> None:
        error = refusal(self.loop.cell.name, node.queue, why) or TransportError(
            f"cannot consume {node.address}: the broker refused {why}")
        if not self.ready.done:
            self.error = error
            self.ready.set_result(None)
            return
        LOG.warning("cell %s: %s; trying again", self.loop.cell.name, error)
        self.loop.schedule(1.0, self._retry)

    def io_opened(self, link: Link) -> None:
        if link != self.link:
            return
        if link.remote_source is None or link.remote_source.address is None:
            return  # refused; the detach with the reason follows
        self.owed = 0
        link.flow(self.credit)
        self.ready.set_result(None)

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
        first = not self.ready.done
        self.link = self.session = None
        if self.closing:
            return
        if first:
            text = describe(cond)
            queue = self.node.queue if self.node is not None and self.node.queue else \
                self.address
            self.error = refusal(self.loop.cell.name, queue, text) or TransportError(
                f"cannot consume {self.address}: {text}")
            self.ready.set_result(None)
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
        self.declaring = False
        self.unacked = 0
        self._held.clear()  # the broker redelivers them

    def io_connected(self, conn: Connection) -> None:
        if not self.closing and self.error is None:
            self._attach(conn)

    def io_closed(self) -> None:
        self.closing = True
        self.ready.set_result(None)
