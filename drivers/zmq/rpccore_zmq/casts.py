"""Casts, and what else goes out on the client's shared connections (calls
that must follow casts, gathers): sent, acknowledged, failed over.

Every request must be acknowledged by the server's listener with a receipt
(sent once the request is in a server's queue) within
``zmq_receipt_timeout``. A peer that misses it (and sends nothing at all
meanwhile), or refuses a request because nobody there consumes it, makes the
request move on (:func:`~rpccore_zmq.failover.fail_over`): a topic request
goes to the next host of the topic, a host-directed one is given up. Then a
waiting sender gets the error; a plain cast is counted and logged
(``returned`` or ``zmq_lost_casts``), and a host-directed one makes the next
plain cast to that host raise (:class:`~rpccore_zmq.losses.LostCasts`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from rpccore.driver import ReplyHandler
from rpccore.errors import TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.connections import Connection, Connections
from rpccore_zmq.eventloop import EventLoop
from rpccore_zmq.failover import NextHost, fail_over, failure
from rpccore_zmq.frames import send_frames
from rpccore_zmq.losses import LostCasts
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: Seconds between pings to a peer marked dead (any answer revives it).
PING_INTERVAL = 0.5
#: Messages read from a connection before the loop turns to other work.
BATCH = 256


class CastSender:
    """Sends requests on the shared connections and watches their receipts.

    :param loop: the client's loop, which reads the connections.
    :param on_reply: where every reply read here goes (the cell's reply
        handler: calls sent behind casts, gathers, late replies).
    :param on_peer_failed: told of an endpoint that stopped answering.
    """

    def __init__(self, peers: PeerTable, loop: EventLoop,
                 new_socket: Callable[[str], zmq.Socket[Any]], on_reply: ReplyHandler,
                 on_peer_failed: Callable[[str], None]) -> None:
        self.peers = peers
        self.cell = peers.cell
        self.loop = loop
        self.receipt_timeout = peers.receipt_timeout
        self.queue_size: int = self.cell.options.zmq_send_queue
        self._on_replies = on_reply
        self._on_peer_failed = on_peer_failed
        self.connections = Connections(peers, loop, new_socket, self._read, self._calling)
        #: host-directed casts given up, reported by the next cast there
        self.losses = LostCasts()
        #: calls a server has taken, waiting for their reply, by sequence number
        self._calls: dict[int, Outgoing] = {}
        #: requests handed to the loop and not yet sent (calls wait behind them)
        self.queued = 0
        self._queued_lock = threading.Lock()

    # -- any thread -------------------------------------------------------------

    def send(self, out: Outgoing) -> None:
        """Send ``out``: from the calling thread when its first host is
        connected and alive, else through the loop. Never blocks."""
        if not self._send_now(out):
            self.hand_to_loop(out)

    def hand_to_loop(self, out: Outgoing) -> None:
        """Have the loop send ``out``: the calling thread touches no socket
        and takes no lock another thread may hold for long (an event loop's
        thread, which must not wait: see ``ZmqDriver.send_nowait``)."""
        with self._queued_lock:
            self.queued += 1
        self.loop.submit(lambda: self._dispatch_queued(out))

    def in_flight(self, endpoint: str) -> bool:
        """Whether requests sent to ``endpoint`` on its shared connection (or
        queued for the loop) are not yet acknowledged: a call sent on another
        connection could overtake them."""
        if self.queued:
            return True
        conn = self.connections.get(endpoint)
        return conn is not None and bool(conn.unacked)

    def mark_silent(self, host: str, why: str) -> None:
        """A call found ``host`` silent: mark it dead (on the loop), as a
        missed receipt does."""
        self.loop.submit(lambda: self._silent(host, why))

    def _send_now(self, out: Outgoing) -> bool:
        host = self.peers.next_host(out)
        if host is None:
            return False
        try:
            endpoint = self.peers.endpoint_of(host)
        except ValueError:
            return False  # the loop's failover says so
        conn = self.connections.get(endpoint)
        dead = self.peers.dead
        if conn is None or endpoint in dead:
            return False
        # Wait for the lock even when the loop holds it (it reads a batch):
        # handing the message to the loop instead would queue it behind a
        # thread that, while this one keeps the GIL busy, gets to run only
        # every few milliseconds.
        with conn.lock:
            if conn.socket is None or endpoint in dead:
                return False
            try:
                readable = self._put(conn, out)
            except zmq.ZMQError:
                return False  # the loop retries, and fails over or reports
            out.tried.append(host)
            # receipts waiting: take them here rather than wake the loop
            if readable:
                readable = self._take_receipts(conn)
        if readable and conn.handler is not None:
            self.loop.poke(conn.handler)
        return True

    def _put(self, conn: Connection, out: Outgoing) -> bool:
        """Send ``out`` on ``conn`` (lock held); True when input is waiting.

        :raises zmq.ZMQError: the send failed (queue full, socket closed).
        """
        sock = conn.socket
        assert sock is not None
        seq = next(self.peers.seq)
        frames = [protocol.request(out.kind, seq, out.topic, out.host, out.body)]
        if out.waited_for:
            readable = sock.send(frames)
        else:
            # A plain cast skips the ZMQ_EVENTS check (a tenth of its cost):
            # receipts whose wake-up this send swallowed are read by the
            # loop's next tick (on_tick), at most tick_interval late.
            with sock.lock:
                send_frames(sock.socket, frames)
            readable = False
        out.sent_at = conn.last_used = time.monotonic()
        out.endpoint = conn.endpoint
        conn.unacked[seq] = out
        return readable

    def _take_receipts(self, conn: Connection) -> bool:
        """(A sending thread, ``conn.lock`` held) read what the peer sent
        and settle what receipts acknowledge. Anything else, and all that
        follows it, is left to the loop (``conn.backlog``, kept in order).

        :returns: whether the loop must look at ``conn``.
        """
        sock = conn.socket
        if conn.backlog or sock is None:
            return True
        batch = sock.receive(BATCH)
        if not batch:
            return False
        conn.last_read = self.peers.heard[conn.endpoint] = time.monotonic()
        for i, frames in enumerate(batch):
            if len(frames) != 1 or not protocol.is_receipt(frames[0]):
                conn.backlog.extend(batch[i:])
                return True
            self.peers.mark_alive(conn.endpoint)
            self._acknowledged(conn, protocol.parse_header(frames[0])[1])
        return len(batch) == BATCH

    def _acknowledged(self, conn: Connection, seq: int) -> None:
        """A receipt: every request to the peer up to ``seq`` was taken."""
        unacked = conn.unacked
        while unacked:
            first = next(iter(unacked))
            if first > seq:
                break
            out = unacked.popitem(last=False)[1]
            if out.kind == protocol.CALL and out.waited_for:
                self._calls[first] = out  # its caller waits for the reply
            else:
                out.settle(None)

    # -- the loop: sending --------------------------------------------------

    def _dispatch_queued(self, out: Outgoing) -> None:
        try:
            self._dispatch(out)
        finally:
            with self._queued_lock:
                self.queued -= 1

    def _dispatch(self, out: Outgoing) -> None:
        if not fail_over(out, self.peers, functools.partial(self._try_host, out)):
            self._give_up(out)

    def _try_host(self, out: Outgoing, host: str, endpoint: str) -> None:
        try:
            conn = self.connections.open(host, endpoint)
        except (TransportError, zmq.ZMQError) as exc:
            raise NextHost(str(exc)) from None
        with conn.lock:
            try:
                readable = self._put(conn, out)
            except zmq.Again:
                raise NextHost(f"the send queue to {host} is full "
                               f"({self.queue_size} messages)") from None
            except zmq.ZMQError as exc:
                raise NextHost(f"sending to {host} failed: {exc}") from None
        if readable and conn.handler is not None:
            self.loop.mark_hot(conn.handler)

    def _give_up(self, out: Outgoing) -> None:
        error = failure(out)
        if out.waited_for:
            out.settle(error)
            return
        refused = isinstance(error, Undeliverable)
        if out.kind == protocol.NOTIFY:  # for one pool, whose hosts stopped listening
            self.cell.stats.incr("returned" if refused else "zmq_lost_notifications")
            _RATELOG.warning("lost-notification:" + (", ".join(out.tried) or "no host"),
                             "cell %s: notification for pool %r dropped: %s", self.cell.name,
                             protocol.pool_name(out.host.decode("utf-8")), error)
            return
        self.cell.stats.incr("returned" if refused else "zmq_lost_casts")
        _RATELOG.warning("lost:" + (", ".join(out.tried) or "no host"),
                         "cell %s: cast dropped: %s", self.cell.name, error)
        if out.directed and out.kind == protocol.CAST:
            self.losses.record(out.candidates[0], error)

    # -- the loop: receiving ------------------------------------------------

    def _read(self, conn: Connection) -> bool:
        """Handle what the peer sent on ``conn``; True if more is waiting.
        Replies go to the cell's handler once the lock is released, so that
        threads sending on the connection do not wait for the handler."""
        replies: list[tuple[bytes, Outgoing | None]] = []
        with conn.lock:
            sock = conn.socket
            if conn.backlog:  # what a sending thread read and left to the loop
                backlog, conn.backlog = conn.backlog, []
                for frames in backlog:
                    self._on_frames(conn, frames, replies)
            batch = sock.receive(BATCH) if sock is not None else []
            if batch:
                conn.last_read = self.peers.heard[conn.endpoint] = time.monotonic()
            for frames in batch:
                if conn.socket is not sock:  # failed over meanwhile: a new socket
                    batch = []
                    break
                self._on_frames(conn, frames, replies)
        # Every reply this loop reads goes to the cell's handler from here, in
        # order, a call's first one too: handed to its caller's thread, it
        # could be overtaken by the later ones (keepalives, stream items).
        for body, out in replies:
            try:
                self._on_replies(body)
            except Exception:
                LOG.exception("cell %s: the reply handler failed", self.cell.name)
            if out is not None and out.waited_for:
                out.settle(None)  # its caller stops waiting
        return len(batch) == BATCH

    def _read_all(self, conn: Connection) -> None:
        while self._read(conn):
            pass

    def _on_frames(self, conn: Connection, frames: list[bytes],
                   replies: list[tuple[bytes, Outgoing | None]]) -> None:
        try:
            kind, seq, envelope = protocol.parse_reply(frames)
        except protocol.Malformed as exc:
            self.peers.malformed(conn.endpoint, str(exc))
            return
        if kind == protocol.REPLY:
            out = self._calls.pop(seq, None) or conn.unacked.pop(seq, None)
            # the server reads a connection in order: whatever went before the
            # call on it was taken, even if its receipt is still held back
            self._acknowledged(conn, seq - 1)
            replies.append((envelope, out))
            return
        self.peers.mark_alive(conn.endpoint)
        if kind == protocol.RECEIPT:
            self._acknowledged(conn, seq)
        elif kind == protocol.REFUSED:
            out = conn.unacked.pop(seq, None)
            if out is not None:
                out.refusals += 1
                out.why = f"nobody consumes it on {conn.host}"
                self._dispatch(out)
        elif kind != protocol.PONG:
            self.peers.malformed(conn.endpoint, f"unknown kind {kind[:8]!r}")

    def _calling(self) -> set[str]:
        """The endpoints of calls waiting for their replies."""
        return {out.endpoint for out in self._calls.values()}

    # -- the loop: liveness ---------------------------------------------------

    def on_tick(self, now: float) -> None:
        """Find peers that stopped answering, ping dead ones, forget calls
        whose callers gave up."""
        for conn in self.connections:
            if conn.unacked and conn.last_read < now - self.loop.tick_interval:
                self._read_all(conn)  # receipts whose wake-up a cast swallowed (see _put)
            if conn.unacked:
                self._judge(conn, now)
            elif conn.endpoint in self.peers.dead:
                self._ping(conn, now)
        if self._calls:
            for seq, out in list(self._calls.items()):
                if out.deadline < now:
                    del self._calls[seq]

    def _judge(self, conn: Connection, now: float) -> None:
        """A peer working through a backlog receipts as it reads, so an old
        unacknowledged request alone does not make it dead: silence for the
        whole timeout does."""
        limit = now - self.receipt_timeout
        for attempt in range(2):
            oldest = conn.oldest()
            if oldest is None or oldest.sent_at >= limit or not self.peers.silent(
                    conn.endpoint, limit):
                return
            if attempt == 0:
                # judge on what the peer has sent, not on what this thread
                # has had the time to read
                self._read_all(conn)
        self._peer_failed(conn, f"no receipt from {conn.host} within "
                                f"{self.receipt_timeout:g} s, nothing else heard from it")

    def _ping(self, conn: Connection, now: float) -> None:
        sock = conn.socket
        if now - conn.last_ping < PING_INTERVAL or sock is None:
            return
        conn.last_ping = now
        try:
            if sock.send([protocol.header(protocol.PING, next(self.peers.seq))]):
                self.loop.mark_hot(conn.handler)  # type: ignore[arg-type]
        except zmq.ZMQError:
            pass

    def _silent(self, host: str, why: str) -> None:
        try:
            endpoint = self.peers.endpoint_of(host)
            conn = self.connections.open(host, endpoint)
        except (TransportError, ValueError, zmq.ZMQError):
            return
        if endpoint not in self.peers.dead and self.peers.silent(
                endpoint, time.monotonic() - self.receipt_timeout):
            self._peer_failed(conn, why)

    def _peer_failed(self, conn: Connection, why: str) -> None:
        """Mark the peer dead, drop what its connection still queues (a fresh
        socket replaces it), and move its unacknowledged requests on."""
        self.peers.mark_dead(conn.endpoint, why)
        self._on_peer_failed(conn.endpoint)
        with conn.lock:
            pending = list(conn.unacked.values())
            conn.unacked.clear()
            self.connections.disconnect(conn)
        self.connections.connect(conn)
        conn.last_ping = time.monotonic()
        for seq, out in list(self._calls.items()):
            if out.endpoint == conn.endpoint:  # taken, but the host stopped answering
                del self._calls[seq]
                out.settle(TransportError(f"{conn.host} stopped answering while the call "
                                          f"was in flight: {why}"))
        for out in pending:
            out.why = why
            self._dispatch(out)

    def close(self) -> None:
        """(The loop, stopping) fail what waits, close every connection."""
        closed = TransportError(f"cell {self.cell.name}: the zmq driver was closed")
        for conn in self.connections:
            for out in conn.unacked.values():
                out.settle(closed)
            conn.unacked.clear()
        self.connections.close_all()
        for out in self._calls.values():
            out.settle(closed)
        self._calls.clear()
