"""What a server's (or a notification listener's) subscription is, and the
requests it receives."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from rpccore.driver import Incoming, Subscription
from rpccore_zmq.protocol import notification_key

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore.destination import Destination


class HandedToLoop:
    """A reply that found the socket busy and was handed to the listener's
    loop to send; ``sent`` once the loop did."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class RequestSource(Protocol):
    """Where a request came from: the listener's router
    (:class:`rpccore_zmq.router.Router`), which sends its replies and is
    told when it is done with."""

    def send_reply(self, identity: bytes, seq: int, body: bytes,
                   after: HandedToLoop | None = None) -> HandedToLoop | None:
        """Send a reply over the connection the request came in on; while
        ``after`` (an earlier reply of the request) waits in the loop, this
        one follows it there. Returns this reply if the loop is to send it."""

    def release_thread(self, expected: float | None) -> bool:
        """See :meth:`rpccore.driver.Incoming.release_thread`."""

    def done(self) -> None:
        """A request it delivered was acknowledged by its server."""


class ZmqIncoming(Incoming):
    """A request delivered to one subscription."""

    __slots__ = ("body", "_identity", "_seq", "_source", "_call", "_acked", "_in_loop")

    def __init__(self, body: bytes, identity: bytes, seq: int, source: RequestSource,
                 call: bool) -> None:
        self.body = body
        self._identity = identity
        self._seq = seq
        self._source = source
        self._call = call
        self._acked = False
        #: the last reply of this request handed to the loop: until it is
        #: sent, later ones (stream items, the final reply) follow it
        self._in_loop: HandedToLoop | None = None

    @property
    def can_reply(self) -> bool:
        return self._call

    def reply(self, body: bytes) -> None:
        """Queue the reply on the connection the request came in on; a caller
        that has gone away is ignored (libzmq drops it)."""
        if self._call:
            handed = self._source.send_reply(self._identity, self._seq, body, self._in_loop)
            if handed is not None:
                self._in_loop = handed

    def release_thread(self, expected: float | None = None) -> bool:
        """Hand the listener's loop to another thread (leader/follower), so
        that this one can run the request (see :mod:`rpccore_zmq.delivery`)."""
        return self._source.release_thread(expected)

    def ack(self) -> None:
        if not self._acked:
            self._acked = True
            self._source.done()


class ZmqSubscription:
    """One server's consumers: its topic, its (topic, host) and fanout; or,
    with ``pool`` (a :func:`~rpccore_zmq.protocol.pool_code`), one
    notification listener's: its pool of notification topic ``dest.topic``.

    :ivar key: what it is registered under with the matchmaker
    """

    def __init__(self, cell: CellView, dest: Destination, host: str,
                 on_message: Callable[[Incoming], None], pool: str | None = None) -> None:
        self.cell = cell
        self.dest = dest
        self.topic = dest.topic
        self.host = host
        self.on_message = on_message
        self.pool = pool
        self.key = dest.topic if pool is None else notification_key(dest.topic)
        self.closed = False


class ClosedOnce(Subscription):
    """What the driver's ``subscribe`` and ``listen`` return: ``close``
    runs ``unsubscribe`` once, however often it is called."""

    def __init__(self, unsubscribe: Callable[[], None]) -> None:
        self._unsubscribe = unsubscribe
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._unsubscribe()
