"""What a server's subscription is, and what it receives."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.driver import Incoming

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.destination import Destination
    from rpccore_zmq.server import HandedToLoop, ServerLoop


class ZmqIncoming(Incoming):
    """A request delivered to one subscription."""

    __slots__ = ("body", "_identity", "_seq", "_server", "_call", "_acked", "_in_loop")

    def __init__(self, body: bytes, identity: bytes, seq: int, server: ServerLoop,
                 call: bool) -> None:
        self.body = body
        self._identity = identity
        self._seq = seq
        self._server = server
        self._call = call
        self._acked = False
        #: the last reply of this request handed to the server's loop: until
        #: it is sent, later ones (stream items, the final reply) follow it
        self._in_loop: HandedToLoop | None = None

    @property
    def can_reply(self) -> bool:
        return self._call

    def reply(self, body: bytes) -> None:
        """Queue the reply on the connection the request came in on; a caller
        that has gone away is ignored (libzmq drops it)."""
        if self._call:
            handed = self._server.send_reply(self._identity, self._seq, body, self._in_loop)
            if handed is not None:
                self._in_loop = handed

    def release_thread(self, expected: float | None = None) -> bool:
        """Hand the server socket's loop to another thread (leader/follower),
        so that this one can run the request; or, for a request expected to
        be quick, lend it the loop (see :meth:`ServerLoop.release_thread`)."""
        return self._server.release_thread(expected)

    def ack(self) -> None:
        if not self._acked:
            self._acked = True
            self._server.done()


class ZmqSubscription:
    """One server's consumers: its topic, its (topic, host) and fanout."""

    def __init__(self, cell: Cell, dest: Destination, host: str,
                 on_message: Callable[[Incoming], None]) -> None:
        self.cell = cell
        self.dest = dest
        self.topic = dest.topic
        self.host = host
        self.on_message = on_message
        self.closed = False
