"""The client side of one driver, put together: a peer table
(:mod:`rpccore_zmq.peers`) shared by the cast sender (:mod:`rpccore_zmq.casts`,
on the client's event loop) and the call path (:mod:`rpccore_zmq.calls`, on
the calling threads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from rpccore.driver import ReplyHandler
from rpccore_zmq.calls import CallPath
from rpccore_zmq.casts import CastSender
from rpccore_zmq.curve import curve_keys
from rpccore_zmq.eventloop import EventLoop
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable
from rpccore_zmq.sockopts import client_socket

if TYPE_CHECKING:
    from rpccore.cellview import CellView


class Client:
    """Every client connection of one driver, and the thread that reads the
    shared ones.

    :raises ConfigError: malformed CURVE keys.
    """

    def __init__(self, cell: CellView, context: zmq.Context[Any]) -> None:
        options = cell.options
        self.context = context
        self._socket_options = (options.zmq_send_queue, cell.max_message_size,
                                options.zmq_heartbeat_interval, curve_keys(cell))
        self.peers = PeerTable(cell)
        self.loop = EventLoop(f"rpccore-zmq-client-{cell.name}", on_tick=self._on_tick,
                              on_stop=self._on_stop)
        self.casts = CastSender(self.peers, self.loop, self.new_socket,
                                cell.pending_calls.on_reply, self._peer_failed)
        self.calls = CallPath(self.peers, self.casts, self.new_socket)
        self.losses = self.casts.losses
        #: send a cast, a confirmed cast or a gather's copy (never blocks)
        self.send: Callable[[Outgoing], None] = self.casts.send
        #: run a call on the calling thread (see CallPath.call)
        self.call: Callable[[Outgoing, ReplyHandler], None] = self.calls.call
        self.loop.start_thread()

    def new_socket(self, endpoint: str) -> zmq.Socket[Any]:
        """(Any thread) a DEALER connecting to ``endpoint``."""
        return client_socket(self.context, endpoint, *self._socket_options)

    @property
    def alive(self) -> bool:
        """Whether the loop still runs."""
        return not self.loop.stopped.is_set()

    def stop(self) -> None:
        """Close every connection and stop the loop."""
        self.calls.close()
        self.loop.stop()

    def _on_tick(self, now: float) -> None:
        self.casts.on_tick(now)

    def _on_stop(self) -> None:
        self.calls.close()
        self.casts.close()

    def _peer_failed(self, endpoint: str) -> None:
        # idle call connections to it may hold queued requests: not reused
        self.calls.pool.forget(endpoint)
