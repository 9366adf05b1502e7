"""The serving side: one bound ROUTER socket per driver, demultiplexed by
(topic, host) to the subscriptions of the servers of this process.

One socket (and its I/O thread) serves every subscription of the process on
that address and port, whichever ``RPC`` object or cell made it: get it with
:func:`listener_for`. It is bound when the first subscription starts and
closed when the last one has stopped and every message it delivered has been
acknowledged (so replies of requests in flight still go out over it).

Requests are delivered at the end of the loop's round, on the thread that
read them (:mod:`rpccore_zmq.delivery`): a quick call is read, run and
answered on one thread, and a blocking method holds up nothing else.

Hostile input never stops the loop: frames that do not parse are counted
(``dropped_malformed``, and ``dropped_oversize`` for envelopes over
``max_message_size``) and dropped; libzmq itself disconnects a peer sending a
frame over the socket's ``MAXMSGSIZE`` and drops connections that fail the
ZMTP handshake (raw TCP noise), which are counted as ``zmq_bad_handshakes``.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from rpccore.errors import ConfigError, TransportError
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.curve import curve_keys, secure_server
from rpccore_zmq.frames import LockedSocket
from rpccore_zmq.delivery import DeliveryLoop
from rpccore_zmq.loop import LoopStopped
from rpccore_zmq.sockopts import set_common_options
from rpccore_zmq.subscription import ZmqIncoming, ZmqSubscription

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                       | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
#: Requests read from the socket before receipts go out.
_BATCH = 128
#: Seconds a call's receipt waits for its reply, which stands in for it.
_CALL_RECEIPT_DELAY = 0.05
#: Least seconds between two cast receipts to one client.
_RECEIPT_INTERVAL = 0.005


class BindError(TransportError):
    """The server socket could not be bound (``errno`` says why)."""

    def __init__(self, message: str, errno_value: int) -> None:
        super().__init__(message)
        self.errno = errno_value


class HandedToLoop:
    """A reply a worker handed to the loop to send; ``sent`` once it did."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class ServerLoop(DeliveryLoop):
    """The I/O thread of the bound socket of one driver."""

    def __init__(self, cell: Cell, endpoint: str) -> None:
        super().__init__(f"rpccore-zmq-server-{endpoint}", zmq.Context())
        options = cell.options
        self.cell = cell
        self.endpoint = endpoint
        self.finished = False
        self.max_size: int = cell.max_message_size
        self.queue_size: int = options.zmq_send_queue
        self.heartbeat_interval: float = options.zmq_heartbeat_interval
        self.drain_limit: float = options.rpc_response_timeout
        self.curve = curve_keys(cell)
        self._authenticator: Any = None
        self._monitor: zmq.Socket[Any] | None = None
        self._monitor_fd = -1
        self._by_topic: dict[str, list[ZmqSubscription]] = {}
        self._by_host: dict[tuple[str, str], list[ZmqSubscription]] = {}
        self._turn = itertools.count()
        self._outstanding = 0
        self._outstanding_lock = threading.Lock()
        self._idle_since: float | None = None
        #: calls received and not yet answered, with when: their receipt is
        #: sent only if the reply is slow (the reply is the receipt)
        self._unanswered: dict[tuple[bytes, int], float] = {}
        #: cast receipts held back, and when each client last got one
        self._receipts_due: dict[bytes, int] = {}
        self._receipt_sent: dict[bytes, float] = {}

    # -- any thread -------------------------------------------------------------

    def send_reply(self, identity: bytes, seq: int, body: bytes,
                   after: HandedToLoop | None = None) -> HandedToLoop | None:
        """Send a reply now, from the calling thread (the socket's lock makes
        that safe), over the connection the request came in on.

        :param after: an earlier reply of the same request that was handed
            to the loop: while the loop has not sent it, this one follows it
            there, so it cannot overtake it.
        :returns: this reply, when it was handed to the loop.
        """
        message = protocol.reply(seq, body)
        self._unanswered.pop((identity, seq), None)
        if after is not None and not after.sent:
            return self._hand_to_loop([identity, message])
        return self._send([identity, message])

    def done(self) -> None:
        """A delivered message was acknowledged by its server."""
        with self._outstanding_lock:
            self._outstanding -= 1
            last = self._outstanding == 0
        if last and not self._by_topic:
            self.submit(self._close_if_idle)

    # -- loop thread: subscriptions ------------------------------------------

    def add(self, sub: ZmqSubscription) -> None:
        """Start delivering to ``sub``, binding the socket first if needed.

        :raises BindError: the address is in use or cannot be bound.
        :raises LoopStopped: this listener has closed for good.
        """
        if self.finished:
            raise LoopStopped(f"the listener on {self.endpoint} has closed")
        if self.conn is None:
            try:
                self._bind()
            except (BindError, ConfigError):
                if not self._by_topic:
                    self._finish()
                raise
        self._by_topic.setdefault(sub.topic, []).append(sub)
        self._by_host.setdefault((sub.topic, sub.host), []).append(sub)
        self._idle_since = None

    def remove(self, sub: ZmqSubscription) -> None:
        """Stop delivering to ``sub``; after this it gets nothing more."""
        sub.closed = True
        _discard(self._by_topic, sub.topic, sub)
        _discard(self._by_host, (sub.topic, sub.host), sub)
        if not self._by_topic:
            self._idle_since = time.monotonic()
            self._close_if_idle()

    def _bind(self) -> None:
        sock = self.context.socket(zmq.ROUTER)
        set_common_options(sock, self.queue_size, self.max_size, self.heartbeat_interval)
        sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        if "[" in self.endpoint or "*" in self.endpoint:
            sock.setsockopt(zmq.IPV6, 1 if "[" in self.endpoint else 0)
        try:
            if self.curve is not None:
                self._authenticator = secure_server(sock, self.curve, self.cell)
            sock.bind(self.endpoint)
        except BaseException as exc:
            self._stop_authenticator()
            sock.close(linger=0)
            if isinstance(exc, zmq.ZMQError):
                raise BindError(f"cell {self.cell.name}: cannot bind {self.endpoint}: {exc}",
                                exc.errno or 0) from None
            raise
        self.conn = LockedSocket(sock, routed=True)
        self.watch(self.conn.fd, self.on_readable)
        self.mark_hot(self.on_readable)
        self._monitor = sock.get_monitor_socket(_HANDSHAKE_FAILURES)
        # by its descriptor, like the bound socket: a ZMQ socket in the poll
        # set costs zmq_poll an event check per round, on every message
        self._monitor_fd = int(self._monitor.getsockopt(zmq.FD))
        self.watch(self._monitor_fd, self._on_monitor)
        self.mark_hot(self._on_monitor)
        LOG.info("cell %s: listening on %s", self.cell.name, self.endpoint)

    def _close_if_idle(self) -> None:
        if self.conn is None or self._by_topic:
            return
        with self._outstanding_lock:
            busy = self._outstanding
        waited = time.monotonic() - (self._idle_since or time.monotonic())
        if busy and waited < self.drain_limit:
            return
        self._close_socket()
        LOG.info("cell %s: stopped listening on %s%s", self.cell.name, self.endpoint,
                 f" ({busy} requests never acknowledged)" if busy else "")
        self._finish()

    def _finish(self) -> None:
        """Leave the process's listeners and stop the thread."""
        with _listeners_lock:
            self.finished = True
            if _listeners.get(self.endpoint) is self:
                del _listeners[self.endpoint]
        self._running = False

    def _close_socket(self) -> None:
        if self._monitor is not None:
            self.unwatch(self._monitor_fd)
        conn = self.conn
        if conn is not None:
            with conn.lock:
                self.unwatch(conn.fd)
                try:
                    conn.socket.disable_monitor()
                except zmq.ZMQError:
                    pass
                conn.socket.close(linger=0)
                self.conn = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        self._stop_authenticator()

    def _stop_authenticator(self) -> None:
        if self._authenticator is not None:
            try:
                self._authenticator.stop()
            except Exception:
                LOG.exception("cell %s: stopping the CURVE authenticator failed", self.cell.name)
            self._authenticator = None

    # -- loop thread: traffic ------------------------------------------------

    def _send(self, frames: list[bytes]) -> HandedToLoop | None:
        """(Any thread) send on the bound socket; dropped (and counted) when
        it is closed or the peer's queue is full. A worker that finds the
        socket busy hands the send to the loop rather than queue up on the
        lock (a convoy of workers costs more than one hand-off); returns
        what it handed over, if it did."""
        conn = self.conn
        try:
            if conn is None:
                raise zmq.ZMQError(zmq.ENOTSOCK)
            if conn.lock.acquire(blocking=False):  # nearly always
                try:
                    readable = conn.send_locked(frames)
                finally:
                    conn.lock.release()
            elif self.in_loop:
                readable = conn.send(frames)
            else:
                return self._hand_to_loop(frames)
        except zmq.ZMQError:
            self.cell.stats.incr("zmq_replies_dropped")
            return None
        if readable:  # our send may have consumed the descriptor's signal
            self.poke(self.on_readable)
        return None

    def _hand_to_loop(self, frames: list[bytes]) -> HandedToLoop:
        handed = HandedToLoop()
        self.submit(functools.partial(self._send_in_loop, frames, handed))
        return handed

    def _send_in_loop(self, frames: list[bytes], handed: HandedToLoop) -> None:
        self._send(frames)
        handed.sent = True

    def on_readable(self) -> bool:
        conn = self.conn
        if conn is None:
            return False
        with conn.lock:
            batch = conn.receive(_BATCH) if self.conn is conn else []
        # fewer than asked for: ZMQ_EVENTS showed no more input (see _quiet)
        self._dry = len(batch) < _BATCH
        receipts: dict[bytes, int] = {}
        for frames in batch:
            try:
                req = protocol.parse_request(frames, self.max_size)
            except protocol.Malformed as exc:
                self._malformed(frames, str(exc))
                continue
            if req.kind == protocol.PING:
                self._send([req.identity, protocol.header(protocol.PONG, req.seq)])
                continue
            call = req.kind == protocol.CALL
            if call:  # before delivery: the reply may come back at once
                self._unanswered[(req.identity, req.seq)] = time.monotonic()
            if self._route(req):
                if not call:
                    receipts[req.identity] = req.seq
            else:
                if call:
                    self._unanswered.pop((req.identity, req.seq), None)
                self.cell.stats.incr("zmq_refused")
                self._send([req.identity, protocol.header(protocol.REFUSED, req.seq)])
        if receipts:
            self._receipt(receipts, time.monotonic())
        return len(batch) == _BATCH

    def _receipt(self, receipts: dict[bytes, int], now: float, force: bool = False) -> None:
        """Acknowledge casts, at most once per ``_RECEIPT_INTERVAL`` per
        client (receipts are cumulative): under a stream of casts a client
        gets a few hundred receipts a second rather than one per message,
        which costs both sides less. What is held back goes out when the
        interval has passed (:meth:`on_wake`)."""
        due, sent = self._receipts_due, self._receipt_sent
        due.update(receipts)
        limit = now if force else now - _RECEIPT_INTERVAL
        for identity in [i for i in due if sent.get(i, 0.0) <= limit]:
            sent[identity] = now
            self._send([identity, protocol.header(protocol.RECEIPT, due.pop(identity))])
        if due:
            self.wake_at = min(self.wake_at, now + _RECEIPT_INTERVAL)

    def on_wake(self, now: float) -> None:
        if self._receipts_due:
            self._receipt({}, now, force=True)

    def _cells(self) -> list[Cell]:
        """Every cell with a subscription here (they share the counts of
        what nobody can attribute to one of them)."""
        cells = {id(sub.cell): sub.cell for subs in self._by_topic.values() for sub in subs}
        return list(cells.values()) or [self.cell]

    def _malformed(self, frames: list[bytes], why: str) -> None:
        for cell in self._cells():
            if why.startswith("envelope of"):
                cell.stats.incr("dropped_oversize")
            cell.stats.incr("dropped_malformed")
        _RATELOG.warning("malformed", "cell %s: dropped malformed input on %s: %s",
                         self.cell.name, self.endpoint, why)

    def _route(self, req: protocol.Request) -> bool:
        """Deliver ``req`` at the end of this round to the subscriptions
        that take it; False when none here does."""
        if req.kind == protocol.FANOUT:
            subs = self._by_host.get((req.topic, req.host)) or self._by_topic.get(req.topic)
            if not subs:
                return False
            targets = list(subs)
        else:
            subs = (self._by_host.get((req.topic, req.host)) if req.host
                    else self._by_topic.get(req.topic))
            if not subs:
                return False
            targets = [subs[next(self._turn) % len(subs)] if len(subs) > 1 else subs[0]]
        call = req.kind == protocol.CALL
        for sub in targets:
            if sub.closed:
                continue
            with self._outstanding_lock:
                self._outstanding += 1
            self.deliver_later(sub, ZmqIncoming(req.body, req.identity, req.seq, self, call))
        return True

    def _on_monitor(self) -> bool:
        monitor = self._monitor
        for _ in range(100):
            # edge-triggered descriptor: read until ZMQ_EVENTS shows none
            if monitor is None or not int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return False
            try:
                frames = monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return False
            try:
                event = parse_monitor_message(frames)
            except Exception:
                continue
            if event["event"] & _HANDSHAKE_FAILURES:
                for cell in self._cells():
                    cell.stats.incr("zmq_bad_handshakes")
                _RATELOG.warning("handshake", "cell %s: a connection to %s failed the ZMTP "
                                 "handshake (not an rpccore client?)", self.cell.name,
                                 self.endpoint)
        return True

    def on_tick(self, now: float) -> None:
        if len(self._receipt_sent) > 256:
            for identity, when in list(self._receipt_sent.items()):
                if when < now - 1.0:
                    del self._receipt_sent[identity]
        if self._unanswered:
            limit = now - _CALL_RECEIPT_DELAY
            for key, when in list(self._unanswered.items()):
                if when < limit:
                    del self._unanswered[key]
                    self._send([key[0], protocol.header(protocol.RECEIPT, key[1])])
        if self.conn is not None and not self._by_topic:
            self._close_if_idle()

    def on_stop(self) -> None:
        for subs in self._by_topic.values():
            for sub in subs:
                sub.closed = True
        self._by_topic.clear()
        self._by_host.clear()
        self._close_socket()
        with _listeners_lock:
            self.finished = True
            if _listeners.get(self.endpoint) is self:
                del _listeners[self.endpoint]
        self.context.term()


def _discard(table: dict[Any, list[ZmqSubscription]], key: Any, sub: ZmqSubscription) -> None:
    subs = table.get(key, [])
    if sub in subs:
        subs.remove(sub)
        if not subs:
            del table[key]


_listeners: dict[str, ServerLoop] = {}
_listeners_lock = threading.Lock()


def listener_for(cell: Cell) -> ServerLoop:
    """The running listener of this process on the cell's
    ``zmq_bind_address:zmq_port`` (started, not necessarily bound yet)."""
    options = cell.options
    endpoint = protocol.bind_endpoint(options.zmq_bind_address, options.zmq_port)
    with _listeners_lock:
        loop = _listeners.get(endpoint)
        if loop is None or loop.finished:
            loop = _listeners[endpoint] = ServerLoop(cell, endpoint)
            loop.start()
        return loop


def _forget_listeners_after_fork() -> None:
    # a forked child has none of the parent's threads: its listeners are gone
    _listeners.clear()


os.register_at_fork(after_in_child=_forget_listeners_after_fork)
