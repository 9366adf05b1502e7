"""A server's subscription: its receivers and the thread that hands their
messages to the server.

``on_message`` may block (the server's queue is full), so it never runs on
the I/O thread: receivers push deliveries onto a local queue that a
dispatch thread drains. The local queue stays small because every receiver
only has ``prefetch`` unacknowledged messages at a time; credit is given
back one message per :meth:`QpidIncoming.ack`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proton import Delivery, Message

from rpccore.driver import Incoming, Subscription

from rpccore_qpid.addressing import is_reply_address
from rpccore_qpid.links import IncomingLink

if TYPE_CHECKING:
    from rpccore_qpid.connection import IoLoop

LOG = logging.getLogger(__name__)


class QpidIncoming(Incoming):
    """One request delivered to a server."""

    __slots__ = ("body", "_reply", "_link", "_dlv", "_generation", "_reply_to", "_settled")

    def __init__(self, body: bytes, reply: Callable[[str, bytes], None], link: IncomingLink,
                 dlv: Delivery, generation: int, reply_to: str | None) -> None:
        self.body = body
        self._reply = reply
        self._link = link
        self._dlv = dlv
        self._generation = generation
        self._reply_to = reply_to if is_reply_address(reply_to) else None
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

    def _settle(self, outcome: Any) -> None:
        if self._settled:
            return
        self._settled = True
        link, dlv, generation = self._link, self._dlv, self._generation
        link.loop.submit(lambda: link.io_settle(dlv, generation, outcome))

    @property
    def stale(self) -> bool:
        """Delivered on a connection that has since gone (the broker redelivers)."""
        return self._generation != self._link.loop.generation


class QpidSubscription(Subscription):
    """The receivers of one server and their dispatch thread."""

    def __init__(self, loop: IoLoop, name: str, on_message: Callable[[Incoming], None],
                 reply: Callable[[str, bytes], None]) -> None:
        self._loop = loop
        self._on_message = on_message
        self._reply = reply
        self._queue: queue.SimpleQueue[QpidIncoming | None] = queue.SimpleQueue()
        self._closed = False
        self.links: list[IncomingLink] = []
        self._thread = threading.Thread(target=self._dispatch, daemon=True,
                                        name=f"rpccore-qpid-{name}")
        self._thread.start()

    def add(self, address: str, credit: int, *, temporary: bool = False) -> IncomingLink:
        """A receiver of ``address`` feeding this subscription (attached by the caller)."""
        link = IncomingLink(self._loop, address, credit, self._io_deliver, temporary=temporary)
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
        self._queue.put(QpidIncoming(body, self._reply, link, dlv, self._loop.generation,
                                     message.reply_to))

    def _dispatch(self) -> None:
        while True:
            incoming = self._queue.get()
            if incoming is None:
                return
            if incoming.stale:
                continue
            if self._closed:
                incoming.release()
                continue
            try:
                self._on_message(incoming)
            except Exception:
                LOG.exception("delivering a message to its server failed")
                incoming.release()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        done = threading.Event()

        def io_close() -> None:
            for link in self.links:
                link.io_close()
            done.set()

        self._queue.put(None)
        if self._loop.state == "closed":
            return
        self._loop.submit(io_close)
        if not done.wait(5.0):
            LOG.warning("closing the receivers of a subscription took more than 5 s")
