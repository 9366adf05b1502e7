"""RabbitMQ 4's management node over AMQP 1.0 ("HTTP over AMQP"): how the
driver declares queues and bindings with v2 addresses.

A *link pair* (a sender and a receiver of the same name, both on address
``/management``, ``paired`` in their properties, settled deliveries) carries
requests: ``subject`` is the HTTP method, ``to`` the path (``/queues/NAME``,
``/bindings``), the body a map; the answer's ``subject`` is the status code
(``200``, ``201``, ``204``; ``409`` for a queue that exists with other
arguments, ``400`` for a refused one) and its ``correlation_id`` the
request's ``message_id``. A request without a body (``DELETE``) carries an
AMQP ``null`` body: RabbitMQ 4.0.5's node fails on a message with no body
section (``amqp:internal-error: function_clause``, seen) and closes the pair.

One :class:`Management` per connection, I/O thread only (see
:mod:`rpccore_qpid.links`). Requests made before the pair is attached wait
for it; requests pending when the connection drops are forgotten (their
owners declare again on the next connection).
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from proton import Condition, Connection, Delivery, Link, Message, PropertyDict, Session, symbol

from rpccore.driverkit import Completion
from rpccore_qpid.layout import Request
from rpccore_qpid.links import LinkOwner, describe, link_names, open_session

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
ADDRESS = "/management"
_CREDIT = 8
#: an ``amqp-value`` body section holding ``null`` (descriptor 0x77, null 0x40):
#: proton writes no body section at all for ``body=None``
NULL_BODY = b"\x00\x53\x77\x40"

#: ``answer(status, body)``: status 0 means no answer (the pair failed).
Answer = Callable[[int, Any], None]


class ManagementLoop(Protocol):
    """What :class:`Management` and :func:`ask` use of the I/O loop that
    owns the pair (:class:`rpccore_qpid.connection.IoLoop`, which imports
    this module: naming it here would make an import cycle)."""

    cell: CellView
    #: the open connection, or None (I/O thread only)
    conn: Connection | None
    management: Management

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the I/O thread soon (any thread)."""


class Management(LinkOwner):
    """The management link pair of one driver's connection."""

    def __init__(self, loop: ManagementLoop) -> None:
        self.loop = loop
        self.session: Session | None = None
        self.sender: Link | None = None
        self.receiver: Link | None = None
        self.opened = 0
        self._ids = itertools.count(1)
        self._queued: collections.deque[tuple[str, Request, Answer]] = collections.deque()
        self._waiting: dict[str, Answer] = {}

    def io_request(self, request: Request, answer: Answer) -> None:
        """Send ``request``; ``answer(status, body)`` is called with the reply."""
        self._queued.append((f"rpccore-{next(self._ids)}", request, answer))
        if self.sender is None and self.loop.conn is not None and self.loop.connected:
            self._attach(self.loop.conn)
        self._flush()

    def _attach(self, conn: Connection) -> None:
        self.session = open_session(conn, self)
        name = f"rpccore-management-{next(link_names)}"
        sender = self.session.sender(name)
        sender.source.address = ADDRESS
        sender.target.address = ADDRESS
        receiver = self.session.receiver(name)
        receiver.source.address = ADDRESS
        receiver.target.address = ADDRESS
        for link in (sender, receiver):
            link.snd_settle_mode = Link.SND_SETTLED
            link.properties = PropertyDict({symbol("paired"): True})
            link.rpccore_link = self
            link.open()
        self.sender, self.receiver = sender, receiver
        self.opened = 0

    def io_opened(self, link: Link) -> None:
        if link == self.receiver:
            link.flow(_CREDIT)
        if link in (self.sender, self.receiver):
            self.opened += 1
            self._flush()

    def io_sendable(self, link: Link) -> None:
        if link == self.sender:
            self._flush()

    def _flush(self) -> None:
        sender = self.sender
        if sender is None or self.opened < 2:
            return
        while self._queued and sender.credit > 0:
            message_id, request, answer = self._queued.popleft()
            message = Message(id=message_id, address=request.path, subject=request.method,
                              reply_to="$me", body=request.body)
            send(sender, message)
            self._waiting[message_id] = answer

    def io_message(self, link: Link, dlv: Delivery, message: Message) -> None:
        dlv.settle()
        if link != self.receiver:
            return
        link.flow(1)
        answer = self._waiting.pop(str(message.correlation_id), None)
        if answer is None:
            return
        try:
            status = int(message.subject or "")
        except (TypeError, ValueError):
            status = 0
        answer(status, message.body)

    def io_failed(self, cond: Condition | None, endpoint: Link | Session) -> None:
        if endpoint not in (self.sender, self.receiver, self.session):
            return
        LOG.warning("cell %s: the broker closed the management link pair: %s",
                    self.loop.cell.name, describe(cond))
        self._reset()
        waiting = list(self._waiting.values()) + [entry[2] for entry in self._queued]
        self._waiting.clear()
        self._queued.clear()
        for answer in waiting:
            answer(0, describe(cond))

    def _reset(self) -> None:
        self.sender = self.receiver = self.session = None
        self.opened = 0

    def io_lost(self) -> None:
        self._reset()
        self._waiting.clear()
        self._queued.clear()

    def io_connected(self, conn: Connection) -> None:
        """Attached on the first request, not before (v1 brokers have no
        management node)."""

    def io_closed(self) -> None:
        self.io_lost()


def encode(message: Message) -> bytes:
    """The bytes of a request, with a ``null`` body when it has none."""
    data: bytes = message.encode()
    return data + NULL_BODY if message.body is None else data


def send(sender: Link, message: Message) -> None:
    """Send a request, pre-settled (the pair is ``SND_SETTLED``)."""
    dlv = sender.delivery(sender.delivery_tag())
    sender.stream(encode(message))
    sender.advance()
    dlv.settle()


def ask(loop: ManagementLoop, request: Request, deadline: float) -> tuple[int, Any]:
    """Send one request to ``loop``'s management node from any thread and
    wait for the answer until ``deadline`` (monotonic): ``(status, body)``,
    status 0 when there was none (the pair failed, or the deadline passed)."""
    answered: Completion[tuple[int, Any]] = Completion()

    def answer(status: int, body: Any) -> None:
        answered.set_result((status, body))  # ignored once abandoned

    loop.submit(lambda: loop.management.io_request(request, answer))
    if not answered.wait_until(deadline) and answered.abandon():
        return 0, "no answer from the management node in time"
    return answered.result(0)
