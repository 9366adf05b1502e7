"""The client side: one DEALER connection per peer host for casts, receipts,
failover (calls run on the calling threads: :mod:`rpccore_zmq.calls`).

Every request a client sends must be acknowledged by the server's I/O thread
with a receipt (sent once the request is in a server's queue) within
``zmq_receipt_timeout``. A peer that misses it, or refuses a message because
nobody there consumes it, makes the message move on: a topic message goes to
the next host of the topic, a host-directed one is given up (a waiting caller
gets the error; a plain cast is reported, see :class:`ClientLoop`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq

from rpccore.errors import TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.calls import Caller
from rpccore_zmq.curve import curve_keys
from rpccore_zmq.frames import LockedSocket, send_frames
from rpccore_zmq.loop import SocketLoop
from rpccore_zmq.losses import LostCasts, failure
from rpccore_zmq.peer import Outgoing, Peer
from rpccore_zmq.sockopts import client_socket

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.driver import ReplyHandler

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: Seconds between pings to a peer marked dead (any answer revives it).
PING_INTERVAL = 0.5
#: Messages read from a connection before the loop turns to other work.
_BATCH = 256


class ClientLoop(SocketLoop):
    """Owns every client connection of one driver.

    What happens to a message whose host fails (dead, or refusing it):

    - topic call / confirmed cast: sent to the next host of the topic; when
      none is left, the waiting caller gets :class:`Undeliverable` (every host
      refused it) or :class:`TransportError` (a host did not answer);
    - topic cast: the same failover; when none is left it is counted
      (``returned`` or ``zmq_lost_casts``) and logged;
    - host-directed or fanout cast: counted (``zmq_lost_casts``) and logged;
      a host-directed one also makes the next plain cast to that host raise
      :class:`TransportError` (see :class:`~rpccore_zmq.losses.LostCasts`).
    """

    def __init__(self, cell: Cell, context: zmq.Context[Any]) -> None:
        super().__init__(f"rpccore-zmq-client-{cell.name}", context)
        options = cell.options
        self.cell = cell
        self.port: int = options.zmq_port
        self.receipt_timeout: float = options.zmq_receipt_timeout
        self.max_peers: int = options.zmq_max_peers
        self.queue_size: int = options.zmq_send_queue
        self.heartbeat_interval: float = options.zmq_heartbeat_interval
        self.max_size: int = cell.max_message_size
        #: where replies go whose call has given up (they are counted)
        self.on_reply: ReplyHandler | None = cell.pending_calls.on_reply
        self.peers: dict[str, Peer] = {}
        self.dead_endpoints: set[str] = set()
        self._endpoints: dict[str, str] = {}
        #: host-directed casts given up, reported by the next cast there
        self.losses = LostCasts()
        self.seq = itertools.count(1)
        self.curve = curve_keys(cell)
        #: calls a server has taken, waiting for their reply, by sequence number
        self._calls: dict[int, Outgoing] = {}
        #: when anything last came from an endpoint, on any connection
        self.heard: dict[str, float] = {}
        #: messages handed to the loop and not yet sent (calls wait behind them)
        self.queued = 0
        self.queued_lock = threading.Lock()
        #: runs calls on the calling threads (see rpccore_zmq.calls)
        self.calls = Caller(self)

    # -- any thread -------------------------------------------------------------

    def endpoint_of(self, host: str) -> str:
        """The endpoint of a host string (cached).

        :raises ValueError: malformed host string.
        """
        found = self._endpoints.get(host)
        if found is None:
            found = self._endpoints[host] = protocol.endpoint(host, self.port)
        return found

    def send(self, out: Outgoing) -> None:
        """Send ``out``: from the calling thread when its first host is
        connected and alive, else through the loop. Never blocks."""
        if not self._send_now(out):
            with self.queued_lock:
                self.queued += 1
            self.submit(lambda: self._dispatch_queued(out))

    def _send_now(self, out: Outgoing) -> bool:
        host = self.next_host(out)
        if host is None:
            return False
        peer = self.peers.get(self.endpoint_of(host))
        if peer is None or peer.dead:
            return False
        # Wait for the lock even when the loop holds it (it reads a batch):
        # handing the message to the loop instead would queue it behind a
        # thread that, while this one keeps the GIL busy, gets to run only
        # every few milliseconds.
        with peer.lock:
            if peer.conn is None or peer.dead:
                return False
            try:
                readable = self._put(peer, out)
            except zmq.ZMQError:
                return False  # the loop retries, and fails over or reports
            out.tried.append(host)
            # receipts waiting: take them here rather than wake the loop
            if readable:
                readable = self._take_receipts(peer)
        if readable and peer.handler is not None:
            self.poke(peer.handler)
        return True

    def _take_receipts(self, peer: Peer) -> bool:
        """(A sending thread, ``peer.lock`` held) read what ``peer`` sent
        and settle what receipts acknowledge. Anything else, and all that
        follows it, is left to the loop (``peer.backlog``, kept in order).

        :returns: whether the loop must look at ``peer``.
        """
        conn = peer.conn
        if peer.backlog or conn is None:
            return True
        batch = conn.receive(_BATCH)
        if not batch:
            return False
        peer.last_heard = self.heard[peer.endpoint] = time.monotonic()
        for i, frames in enumerate(batch):
            if len(frames) != 1 or not protocol.is_receipt(frames[0]):
                peer.backlog.extend(batch[i:])
                return True
            self._alive(peer)
            self._acknowledged(peer, protocol.parse_header(frames[0])[1])
        return len(batch) == _BATCH

    def _acknowledged(self, peer: Peer, seq: int) -> None:
        """A receipt: every message to ``peer`` up to ``seq`` was taken."""
        unacked = peer.unacked
        while unacked:
            first = next(iter(unacked))
            if first > seq:
                break
            self._received(first, unacked.popitem(last=False)[1])

    def _put(self, peer: Peer, out: Outgoing) -> bool:
        """Send ``out`` on ``peer`` (lock held); True when input is waiting.

        :raises zmq.ZMQError: the send failed (queue full, socket closed).
        """
        conn = peer.conn
        assert conn is not None
        seq = next(self.seq)
        frames = [protocol.request(out.kind, seq, out.topic, out.host, out.body)]
        if out.waited_for:
            readable = conn.send(frames)
        else:
            # A plain cast skips the ZMQ_EVENTS check (a tenth of its cost):
            # receipts whose wake-up this send swallowed are read by the
            # loop's next tick (on_tick), at most tick_interval late.
            with conn.lock:
                send_frames(conn.socket, frames)
            readable = False
        out.sent_at = peer.last_used = time.monotonic()
        out.peer = peer
        peer.unacked[seq] = out
        return readable

    def casts_in_flight(self, host: str) -> bool:
        """Whether messages sent to ``host`` on the shared connection (or
        queued for the loop) are not yet acknowledged: a call sent on another
        connection could overtake them."""
        if self.queued:
            return True
        try:
            peer = self.peers.get(self.endpoint_of(host))
        except ValueError:
            return False
        return peer is not None and bool(peer.unacked)

    def new_socket(self, endpoint: str) -> zmq.Socket[Any]:
        """(Any thread) a DEALER connecting to ``endpoint``."""
        return client_socket(self.context, endpoint, self.queue_size, self.max_size,
                             self.heartbeat_interval, self.curve)

    def mark_silent(self, host: str, why: str) -> None:
        """(Loop) a call found ``host`` silent: mark it dead, as receipts do."""
        try:
            peer = self._peer(host)
        except (TransportError, ValueError):
            return
        if not peer.dead and self.heard.get(peer.endpoint, 0.0) < time.monotonic() - \
                self.receipt_timeout:
            self._peer_failed(peer, why)

    def is_dead(self, host: str) -> bool:
        """Whether ``host`` missed a receipt and has not answered since."""
        return bool(self.dead_endpoints) and self.endpoint_of(host) in self.dead_endpoints

    # -- loop thread: sending -----------------------------------------------

    def next_host(self, out: Outgoing) -> str | None:
        if not out.tried and not self.dead_endpoints:  # the common case
            first = out.candidates[0]
            if first in self._endpoints:  # a host string known to parse
                return first
        left = [h for h in out.candidates if h not in out.tried]
        for host in left:
            try:
                if self.endpoint_of(host) not in self.dead_endpoints:
                    return host
            except ValueError:
                continue
        return left[0] if left else None

    def _dispatch_queued(self, out: Outgoing) -> None:
        try:
            self._dispatch(out)
        finally:
            with self.queued_lock:
                self.queued -= 1

    def _dispatch(self, out: Outgoing) -> None:
        while True:
            host = self.next_host(out)
            if host is None:
                self._give_up(out)
                return
            if out.tried:
                self.cell.stats.incr("zmq_rerouted")
            out.tried.append(host)
            try:
                peer = self._peer(host)
            except (TransportError, ValueError) as exc:
                out.why = str(exc)
                continue
            with peer.lock:
                try:
                    readable = self._put(peer, out)
                except zmq.Again:
                    out.why = f"the send queue to {host} is full ({self.queue_size} messages)"
                    continue
                except zmq.ZMQError as exc:
                    out.why = f"sending to {host} failed: {exc}"
                    continue
            if readable and peer.handler is not None:
                self.mark_hot(peer.handler)
            return

    def _give_up(self, out: Outgoing) -> None:
        error = failure(out)
        where = ", ".join(out.tried) or "no host"
        if out.waited_for:
            out.settle(error)
            return
        stats = self.cell.stats
        if isinstance(error, Undeliverable):
            stats.incr("returned")
        else:
            stats.incr("zmq_lost_casts")
        _RATELOG.warning("lost:" + where, "cell %s: cast dropped: %s", self.cell.name, error)
        if out.directed and out.kind == protocol.CAST:
            self.losses.record(out.candidates[0], error)

    def _peer(self, host: str) -> Peer:
        endpoint = self.endpoint_of(host)
        peer = self.peers.get(endpoint)
        if peer is None:
            if len(self.peers) >= self.max_peers:
                self._evict_one()
            peer = self.peers[endpoint] = Peer(endpoint, host)
            self._connect(peer)
            LOG.info("cell %s: connecting to %s", self.cell.name, endpoint)
        return peer

    def _evict_one(self) -> None:
        busy = {out.peer for out in self._calls.values()}  # calls waiting for replies
        idle = [p for p in self.peers.values() if not p.unacked and p not in busy]
        if not idle:
            raise TransportError(f"cell {self.cell.name}: {len(self.peers)} peer connections "
                                 f"are busy (zmq_max_peers = {self.max_peers})")
        victim = min(idle, key=lambda p: p.last_used)
        self._disconnect(victim)
        del self.peers[victim.endpoint]
        self.dead_endpoints.discard(victim.endpoint)
        LOG.info("cell %s: closed idle connection to %s (zmq_max_peers reached)",
                 self.cell.name, victim.endpoint)

    def _connect(self, peer: Peer) -> None:
        sock = self.new_socket(peer.endpoint)
        with peer.lock:
            peer.conn = LockedSocket(sock)
            handler = peer.handler = lambda: self._on_readable(peer)
            self.watch(peer.conn.fd, handler)
        self.mark_hot(handler)

    def _disconnect(self, peer: Peer) -> None:
        with peer.lock:
            conn, peer.conn, peer.handler = peer.conn, None, None
            peer.backlog.clear()
            if conn is not None:
                self.unwatch(conn.fd)
                conn.socket.close(linger=0)

    # -- loop thread: receiving ---------------------------------------------

    def _on_readable(self, peer: Peer) -> bool:
        """Handle what ``peer`` sent; True if more is waiting."""
        with peer.lock:
            conn = peer.conn
            if peer.backlog:  # what a sending thread read and left to the loop
                backlog, peer.backlog = peer.backlog, []
                for frames in backlog:
                    self._on_frames(peer, frames)
            batch = conn.receive(_BATCH) if conn is not None else []
            if batch:
                peer.last_heard = self.heard[peer.endpoint] = time.monotonic()
            for frames in batch:
                if peer.conn is not conn:  # failed over meanwhile: a new socket
                    return False
                self._on_frames(peer, frames)
            return len(batch) == _BATCH

    def _on_frames(self, peer: Peer, frames: list[bytes]) -> None:
        try:
            kind, seq, envelope = protocol.parse_reply(frames)
        except protocol.Malformed as exc:
            self.malformed_from(peer.endpoint, str(exc))
            return
        if kind == protocol.REPLY:
            self._on_reply(peer, seq, envelope)
            return
        self._alive(peer)
        if kind == protocol.RECEIPT:
            self._acknowledged(peer, seq)
        elif kind == protocol.REFUSED:
            out = peer.unacked.pop(seq, None)
            if out is not None:
                out.refusals += 1
                out.why = f"nobody consumes it on {peer.host}"
                self._dispatch(out)
        elif kind != protocol.PONG:
            self.malformed_from(peer.endpoint, f"unknown kind {kind[:8]!r}")

    def _received(self, seq: int, out: Outgoing) -> None:
        if out.kind == protocol.CALL and out.waited_for:
            self._calls[seq] = out  # its caller waits for the reply
        else:
            out.settle(None)

    def _on_reply(self, peer: Peer, seq: int, body: bytes) -> None:
        out = self._calls.pop(seq, None) or peer.unacked.pop(seq, None)
        # the server reads a connection in order: whatever went before the
        # call on it was taken, even if its receipt is still held back
        self._acknowledged(peer, seq - 1)
        handler = self.on_reply
        if handler is not None:
            # Every reply of a call that this loop reads goes to the handler
            # from here, the first one too: handed to its caller's thread, it
            # could be overtaken by the later ones (keepalives, stream items).
            try:
                handler(body)
            except Exception:
                LOG.exception("cell %s: the reply handler failed", self.cell.name)
            if out is not None and out.waited_for:
                out.settle(None)
        elif out is not None and out.waited_for:
            out.settle(None, body)  # no handler here: the caller hands it on

    def malformed_from(self, endpoint: str, why: str) -> None:
        self.cell.stats.incr("dropped_malformed")
        _RATELOG.warning("malformed-reply", "cell %s: dropped a malformed message from %s: %s",
                         self.cell.name, endpoint, why)

    def _alive(self, peer: Peer) -> None:
        if peer.dead:
            peer.dead = False
            self.dead_endpoints.discard(peer.endpoint)
            LOG.info("cell %s: %s answers again", self.cell.name, peer.endpoint)

    # -- loop thread: liveness ------------------------------------------------

    def on_tick(self, now: float) -> None:
        limit = now - self.receipt_timeout
        for peer in list(self.peers.values()):
            if peer.unacked and peer.last_heard < now - self.tick_interval:
                while self._on_readable(peer):  # see _put
                    pass
            with peer.lock:
                oldest = next(iter(peer.unacked.values())) if peer.unacked else None
            if peer.last_heard < self.heard.get(peer.endpoint, 0.0):
                peer.last_heard = self.heard[peer.endpoint]  # a call's connection heard it
            if oldest is not None and oldest.sent_at < limit and peer.last_heard < limit:
                # judge on what the peer has sent, not on what this thread
                # has had the time to read
                while self._on_readable(peer):
                    pass
                with peer.lock:
                    oldest = next(iter(peer.unacked.values())) if peer.unacked else None
            if oldest is not None:
                # A peer working through a backlog receipts as it reads, so an
                # old unacknowledged message alone does not make it dead:
                # silence for the whole timeout does.
                if oldest.sent_at < limit and peer.last_heard < limit:
                    self._peer_failed(peer, f"no receipt from {peer.host} within "
                                            f"{self.receipt_timeout:g} s, nothing "
                                            f"else heard from it")
            elif peer.dead and now - peer.last_ping >= PING_INTERVAL and peer.conn is not None:
                peer.last_ping = now
                try:
                    if peer.conn.send([protocol.header(protocol.PING, next(self.seq))]):
                        self.mark_hot(peer.handler)  # type: ignore[arg-type]
                except zmq.ZMQError:
                    pass
        if self._calls:
            for seq, out in list(self._calls.items()):
                if out.deadline < now:  # its caller has given up
                    del self._calls[seq]

    def _peer_failed(self, peer: Peer, why: str) -> None:
        """Mark ``peer`` dead, drop what its connection still queues (a fresh
        socket replaces it), and move its unacknowledged messages on."""
        if not peer.dead:
            peer.dead = True
            self.dead_endpoints.add(peer.endpoint)
            LOG.warning("cell %s: %s is not answering: %s", self.cell.name, peer.endpoint, why)
        self.cell.stats.incr("zmq_peer_failures")
        self.calls.pool.forget(peer.endpoint)
        with peer.lock:
            pending = list(peer.unacked.values())
            peer.unacked.clear()
            self._disconnect(peer)
        self._connect(peer)
        peer.last_ping = time.monotonic()
        for seq, out in list(self._calls.items()):
            if out.peer is peer:  # taken, but the host stopped answering
                del self._calls[seq]
                out.settle(TransportError(f"{peer.host} stopped answering while the call "
                                          f"was in flight: {why}"))
        for out in pending:
            out.why = why
            self._dispatch(out)

    def on_stop(self) -> None:
        self.calls.pool.close()
        for peer in self.peers.values():
            for out in peer.unacked.values():
                if out.waited_for:
                    out.settle(TransportError(f"cell {self.cell.name}: the zmq driver was closed"))
            peer.unacked.clear()
            self._disconnect(peer)
        self.peers.clear()
        for out in self._calls.values():
            out.settle(TransportError(f"cell {self.cell.name}: the zmq driver was closed"))
        self._calls.clear()

