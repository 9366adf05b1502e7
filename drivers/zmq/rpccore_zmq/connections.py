"""The client's shared connections: one DEALER per peer endpoint, which
casts (and calls that must follow them, and gathers) go out on, and which
the client's loop reads.

At most ``zmq_max_peers`` are kept; beyond it the least recently used one
that has nothing in flight is closed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import zmq

from rpccore.errors import TransportError
from rpccore_zmq.eventloop import EventLoop, SocketHandler
from rpccore_zmq.frames import LockedSocket
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable

LOG = logging.getLogger(__name__)


class Connection:
    """The shared connection to one peer endpoint.

    ``socket``, ``unacked`` and ``backlog`` change only with ``lock`` held
    (senders use the socket directly, the loop reads it).
    """

    __slots__ = ("endpoint", "host", "socket", "lock", "unacked", "last_used", "last_read",
                 "last_ping", "handler", "backlog")

    def __init__(self, endpoint: str, host: str) -> None:
        self.endpoint = endpoint
        self.host = host
        self.lock = threading.RLock()
        self.socket: LockedSocket | None = None
        #: reads the socket on the loop (None while not connected)
        self.handler: SocketHandler | None = None
        #: requests sent and not acknowledged yet, by sequence number, oldest first
        self.unacked: OrderedDict[int, Outgoing] = OrderedDict()
        self.last_used = time.monotonic()
        #: when the socket was last read (by the loop or a sender)
        self.last_read = 0.0
        self.last_ping = 0.0
        #: messages a sender read but left to the loop, in order
        self.backlog: list[list[bytes]] = []

    def oldest(self) -> Outgoing | None:
        """The oldest request not acknowledged yet."""
        with self.lock:
            return next(iter(self.unacked.values())) if self.unacked else None


class Connections:
    """The shared connections of one client, by endpoint (the loop adds and
    removes them; any thread looks them up).

    :param peers: the client's peer table (an endpoint whose connection is
        closed is no longer taken for dead: nothing would ping it).
    :param new_socket: a new DEALER connected to an endpoint.
    :param reader: the loop's handler of a connection's input.
    :param busy: the endpoints a connection may not be closed to (calls on
        them wait for replies).
    """

    def __init__(self, peers: PeerTable, loop: EventLoop,
                 new_socket: Callable[[str], zmq.Socket[Any]],
                 reader: Callable[[Connection], bool],
                 busy: Callable[[], set[str]]) -> None:
        self.peers = peers
        self.name = peers.cell.name
        self.loop = loop
        self.limit: int = peers.cell.options.zmq_max_peers
        self._new_socket = new_socket
        self._reader = reader
        self._busy = busy
        self._by_endpoint: dict[str, Connection] = {}
        #: (any thread) the connection to an endpoint, if there is one
        self.get: Callable[[str], Connection | None] = self._by_endpoint.get

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._by_endpoint.values()))

    def __len__(self) -> int:
        return len(self._by_endpoint)

    def endpoints(self) -> list[str]:
        """The endpoints connected to, sorted."""
        return sorted(self._by_endpoint)

    def open(self, host: str, endpoint: str) -> Connection:
        """(Loop) the connection to ``endpoint``, made if there is none.

        :raises TransportError: ``zmq_max_peers`` connections are all busy.
        :raises zmq.ZMQError: no socket could be made (out of descriptors).
        """
        conn = self._by_endpoint.get(endpoint)
        if conn is None:
            if len(self._by_endpoint) >= self.limit:
                self._close_one_idle()
            conn = Connection(endpoint, host)
            self.connect(conn)
            self._by_endpoint[endpoint] = conn
            LOG.info("cell %s: connecting to %s", self.name, endpoint)
        return conn

    def connect(self, conn: Connection) -> None:
        """(Loop) give ``conn`` a fresh socket, read by the loop."""
        sock = LockedSocket(self._new_socket(conn.endpoint))
        with conn.lock:
            conn.socket = sock
            handler = conn.handler = lambda: self._reader(conn)
            self.loop.watch(sock.fd, handler)
        self.loop.mark_hot(handler)

    def disconnect(self, conn: Connection) -> None:
        """(Loop) close ``conn``'s socket; what it still queues is dropped."""
        with conn.lock:
            sock, conn.socket, conn.handler = conn.socket, None, None
            conn.backlog.clear()
            if sock is not None:
                self.loop.unwatch(sock.fd)
                sock.socket.close(linger=0)

    def close_all(self) -> None:
        """(Loop) close every connection."""
        for conn in self:
            self.disconnect(conn)
        self._by_endpoint.clear()

    def _close_one_idle(self) -> None:
        busy = self._busy()
        idle = [c for c in self._by_endpoint.values()
                if not c.unacked and c.endpoint not in busy]
        if not idle:
            raise TransportError(f"cell {self.name}: {len(self._by_endpoint)} peer connections "
                                 f"are busy (zmq_max_peers = {self.limit})")
        victim = min(idle, key=lambda c: c.last_used)
        self.disconnect(victim)
        del self._by_endpoint[victim.endpoint]
        self.peers.dead.discard(victim.endpoint)
        LOG.info("cell %s: closed idle connection to %s (zmq_max_peers reached)",
                 self.name, victim.endpoint)
