"""A server's subscription: its receivers, and the requests they deliver.

Requests are handed to the server's ``on_message`` on the I/O thread: the
core promises it returns at once (unless the server runs methods inline,
``workers=0``). What a slow server holds is bounded
by link credit instead: every receiver has at most ``prefetch``
unacknowledged messages, and credit is given back one message per
:meth:`QpidIncoming.ack`, that is once the server has run the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Delivery, Message

from rpccore.driver import Incoming, Subscription
from rpccore.driverkit import Completion
from rpccore_qpid.layout import Node
from rpccore_qpid.receiver import IncomingLink

if TYPE_CHECKING:
    from rpccore_qpid.connection import IoLoop

LOG = logging.getLogger(__name__)


class QpidIncoming(Incoming):
    """One request delivered to a server."""

    __slots__ = ("body", "_reply", "_link", "_token", "_generation", "_reply_to", "_settled")

    def __init__(self, body: bytes, reply: Callable[[str, bytes], None], link: IncomingLink,
                 token: int, generation: int, reply_to: str | None) -> None:
        self.body = body
        self._reply = reply
        self._link = link
        self._token = token  # the delivery stays on the I/O thread (IncomingLink.io_hold)
        self._generation = generation
        self._reply_to = reply_to  # checked by the subscription
        self._settled = False

    @property
    def can_reply(self) -> bool:
        return self._reply_to is not None

    def reply(self, body: bytes) -> None:
        """Queue the reply for the caller's reply queue; never blocks or raises
        for a caller that has gone (the broker refuses its queue; dropped)."""
        if self._reply_to is not None:
            self._reply(self._reply_to, bytes(body))

    def ack(self) -> None:
        self._settle(Delivery.ACCEPTED)

    def release(self) -> None:
        """Give the message back to the broker for another consumer."""
        self._settle(Delivery.RELEASED)

    def requeue(self) -> bool:
        """Give a notification back to its pool's queue, to be delivered
        again (the ``released`` outcome: RabbitMQ puts it back where it was)."""
        self._settle(Delivery.RELEASED)
        return True

    def _settle(self, outcome: Any) -> None:
        if self._settled:
            return
        self._settled = True
        link, token, generation = self._link, self._token, self._generation
        link.loop.submit(lambda: link.io_settle(token, generation, outcome))

    @property
    def generation(self) -> int:
        """The connection it came on (see :attr:`IoLoop.generation`)."""
        return self._generation


class QpidSubscription(Subscription):
    """The receivers of one server."""

    def __init__(self, loop: IoLoop, on_message: Callable[[Incoming], None],
                 reply: Callable[[str, bytes], None],
                 is_reply_address: Callable[[object], bool]) -> None:
        self._loop = loop
        self._on_message = on_message
        self._reply = reply
        self._is_reply_address = is_reply_address
        self._closed = False
        self.links: list[IncomingLink] = []

    def add(self, node_of: Callable[[], Node], credit: int) -> IncomingLink:
        """A receiver of the node ``node_of()`` gives, feeding this subscription
        (attached by the caller)."""
        link = IncomingLink(self._loop, node_of, credit, self._io_deliver)
        self.links.append(link)
        return link

    def _io_deliver(self, link: IncomingLink, dlv: Delivery, message: Message) -> None:
        body = message.body
        if isinstance(body, memoryview | bytearray):
            body = bytes(body)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = b""  # not ours: the envelope decoder drops it and counts it
        token = link.io_hold(dlv)
        reply_to = message.reply_to
        incoming = QpidIncoming(body, self._reply, link, token, self._loop.generation,
                                reply_to if self._is_reply_address(reply_to) else None)
        try:
            self._on_message(incoming)
        except Exception:
            LOG.exception("delivering a message to its server failed")
            link.io_settle(token, incoming.generation, Delivery.RELEASED)

    def close(self) -> None:
        """Detach the receivers; returns once no more messages are delivered.

        Requests already delivered keep their session until acknowledged, so
        the broker does not hand them to another server meanwhile.
        """
        if self._closed:
            return
        self._closed = True
        if self._loop.state == "closed":
            return
        done: Completion[None] = Completion()

        def io_close() -> None:
            for link in self.links:
                link.io_close()
            done.set_result(None)

        self._loop.submit(io_close)
        if not done.wait(5.0):
            LOG.warning("closing the receivers of a subscription took more than 5 s")
