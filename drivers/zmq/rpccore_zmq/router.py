"""A listener's traffic: requests read off the bound socket and routed by
(topic, host) to the subscriptions of this process's servers, notifications
by (topic, pool) to its notification listeners (:mod:`rpccore_zmq.pools`);
receipts, refusals and pongs; replies back over the connection a request
came in on.

Receipts are cheap for both sides: a cast's is held back so that a client
gets at most one every :data:`RECEIPT_INTERVAL` (receipts are cumulative),
and a call's is not sent at all when its reply comes within
:data:`CALL_RECEIPT_DELAY` (the reply stands in for it).

Hostile input never stops the listener: frames that do not parse are counted
(``dropped_malformed``, and ``dropped_oversize`` for envelopes over
``max_message_size``) and dropped.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.delivery import Delivery
from rpccore_zmq.eventloop import EventLoop
from rpccore_zmq.frames import LockedSocket
from rpccore_zmq.pools import PoolTable
from rpccore_zmq.subscription import HandedToLoop, ZmqIncoming, ZmqSubscription

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: Requests read from the socket before receipts go out.
BATCH = 128
#: Seconds a call's receipt waits for its reply, which stands in for it.
CALL_RECEIPT_DELAY = 0.05
#: Least seconds between two cast receipts to one client.
RECEIPT_INTERVAL = 0.005


class Router:
    """Reads the listener's bound socket and routes what it reads.

    :param cell: the cell that opened the listener (whose counters get what
        cannot be told apart by subscription).
    :param endpoint: the bound address, for log lines.
    :param delivery: hands routed requests to their servers.
    :param on_idle: (any thread) called when the last request delivered was
        acknowledged and no subscription is left.
    """

    def __init__(self, cell: CellView, endpoint: str, loop: EventLoop, delivery: Delivery,
                 max_size: int, on_idle: Callable[[], None]) -> None:
        self.cell = cell
        self.endpoint = endpoint
        self.loop = loop
        self.delivery = delivery
        #: (RequestSource) the delivery's, as is: a request asks it directly
        self.release_thread: Callable[[float | None], bool] = delivery.release_thread
        self.max_size = max_size
        self._on_idle = on_idle
        #: the bound socket (set and cleared by the listener)
        self.conn: LockedSocket | None = None
        self._by_topic: dict[str, list[ZmqSubscription]] = {}
        self._by_host: dict[tuple[str, str], list[ZmqSubscription]] = {}
        self._turn = itertools.count()
        #: requests delivered and not yet acknowledged
        self.outstanding = 0
        self._outstanding_lock = threading.Lock()
        #: notification listeners, apart from the servers
        self.pools = PoolTable(loop, delivery, self._delivered)
        #: calls received and not yet answered, with when: their receipt is
        #: sent only if the reply is slow (the reply is the receipt)
        self._unanswered: dict[tuple[bytes, int], float] = {}
        #: cast receipts held back, and when each client last got one
        self._receipts_due: dict[bytes, int] = {}
        self._receipt_sent: dict[bytes, float] = {}

    # -- subscriptions (the leader) -------------------------------------------

    def add(self, sub: ZmqSubscription) -> None:
        if sub.pool is not None:
            self.pools.add(sub)
            return
        self._by_topic.setdefault(sub.topic, []).append(sub)
        self._by_host.setdefault((sub.topic, sub.host), []).append(sub)

    def remove(self, sub: ZmqSubscription) -> None:
        sub.closed = True
        if sub.pool is not None:
            self.pools.remove(sub)
            return
        _discard(self._by_topic, sub.topic, sub)
        _discard(self._by_host, (sub.topic, sub.host), sub)

    def close_all(self) -> None:
        for subs in self._by_topic.values():
            for sub in subs:
                sub.closed = True
        self._by_topic.clear()
        self._by_host.clear()
        self.pools.close_all()

    @property
    def serving(self) -> bool:
        """Whether any subscription is left."""
        return bool(self._by_topic) or bool(self.pools)

    def cells(self) -> list[CellView]:
        """Every cell with a subscription here (they share the counts of
        what nobody can attribute to one of them)."""
        subs = [sub for subs in self._by_topic.values() for sub in subs]
        cells = {id(sub.cell): sub.cell for sub in subs + self.pools.subscriptions()}
        return list(cells.values()) or [self.cell]

    # -- any thread: what requests need (RequestSource) ------------------------

    def send_reply(self, identity: bytes, seq: int, body: bytes,
                   after: HandedToLoop | None = None) -> HandedToLoop | None:
        """Send a reply now, from the calling thread (the socket's lock makes
        that safe), over the connection the request came in on.

        :param after: an earlier reply of the same request that was handed
            to the loop: while the loop has not sent it, this one follows it
            there, so that it cannot overtake it.
        :returns: this reply, when it was handed to the loop.
        """
        self._unanswered.pop((identity, seq), None)
        frames = [identity, protocol.reply(seq, body)]
        if after is not None and not after.sent:
            return self._hand_to_loop(frames)
        return self.send(frames)

    def done(self) -> None:
        with self._outstanding_lock:
            self.outstanding -= 1
            last = self.outstanding == 0
        if last and not self.serving:
            self._on_idle()

    def _delivered(self) -> None:
        with self._outstanding_lock:
            self.outstanding += 1

    def send(self, frames: list[bytes]) -> HandedToLoop | None:
        """Send on the bound socket; dropped (and counted) when it is closed
        or the peer's queue is full. A thread that finds the socket busy
        hands the send to the loop rather than queue up on the lock (a
        convoy of workers costs more than one hand-off); returns what it
        handed over, if it did."""
        conn = self.conn
        try:
            if conn is None:
                raise zmq.ZMQError(zmq.ENOTSOCK)
            if conn.lock.acquire(blocking=False):  # nearly always
                try:
                    readable = conn.send_locked(frames)
                finally:
                    conn.lock.release()
            elif self.loop.in_loop:
                readable = conn.send(frames)
            else:
                return self._hand_to_loop(frames)
        except zmq.ZMQError:
            self.cell.stats.incr("zmq_replies_dropped")
            return None
        if readable:  # our send may have consumed the descriptor's signal
            self.loop.poke(self.on_readable)
        return None

    def _hand_to_loop(self, frames: list[bytes]) -> HandedToLoop:
        handed = HandedToLoop()
        self.loop.submit(functools.partial(self._send_in_loop, frames, handed))
        return handed

    def _send_in_loop(self, frames: list[bytes], handed: HandedToLoop) -> None:
        self.send(frames)
        handed.sent = True

    # -- the leader: reading ---------------------------------------------------

    def on_readable(self) -> bool:
        """Read a batch of requests and route them; True when more input is
        waiting."""
        conn = self.conn
        if conn is None:
            return False
        with conn.lock:
            batch = conn.receive(BATCH) if self.conn is conn else []
        receipts: dict[bytes, int] = {}
        for frames in batch:
            try:
                req = protocol.parse_request(frames, self.max_size)
            except protocol.Malformed as exc:
                self._malformed(str(exc))
                continue
            if req.kind == protocol.PING:
                self.send([req.identity, protocol.header(protocol.PONG, req.seq)])
            elif req.kind == protocol.POOLS:
                self.send([req.identity, protocol.reply(req.seq, self.pools.answer(req.topic))])
            elif not (self.pools.take(req, self) if req.kind == protocol.NOTIFY
                      else self._take(req)):
                self.cell.stats.incr("zmq_refused")
                self.send([req.identity, protocol.header(protocol.REFUSED, req.seq)])
            elif req.kind != protocol.CALL:
                receipts[req.identity] = req.seq
        if receipts:
            self._receipt(receipts, time.monotonic())
        return len(batch) == BATCH

    def _take(self, req: protocol.Request) -> bool:
        """Deliver ``req`` at the end of this round to the subscriptions
        that take it; False when none here does."""
        call = req.kind == protocol.CALL
        if call:  # before delivery: the reply may come back at once
            self._unanswered[(req.identity, req.seq)] = time.monotonic()
        targets = self._targets(req)
        if not targets:
            if call:
                del self._unanswered[(req.identity, req.seq)]
            return False
        for sub in targets:
            if sub.closed:
                continue
            with self._outstanding_lock:  # (inline: the hot path)
                self.outstanding += 1
            self.delivery.deliver_later(
                sub, ZmqIncoming(req.body, req.identity, req.seq, self, call))
        return True

    def _targets(self, req: protocol.Request) -> list[ZmqSubscription]:
        """The subscriptions ``req`` goes to: every server of the host's
        topic for a fanout copy, else one, in turn."""
        if req.kind == protocol.FANOUT:
            subs = self._by_host.get((req.topic, req.host)) or self._by_topic.get(req.topic)
            return list(subs) if subs else []
        subs = (self._by_host.get((req.topic, req.host)) if req.host
                else self._by_topic.get(req.topic))
        if not subs:
            return []
        return [subs[next(self._turn) % len(subs)] if len(subs) > 1 else subs[0]]

    def _malformed(self, why: str) -> None:
        for cell in self.cells():
            if why.startswith("envelope of"):
                cell.stats.incr("dropped_oversize")
            cell.stats.incr("dropped_malformed")
        _RATELOG.warning("malformed", "cell %s: dropped malformed input on %s: %s",
                         self.cell.name, self.endpoint, why)

    # -- the leader: receipts ----------------------------------------------------

    def _receipt(self, receipts: dict[bytes, int], now: float, force: bool = False) -> None:
        """Acknowledge casts, at most once per :data:`RECEIPT_INTERVAL` per
        client (receipts are cumulative): under a stream of casts a client
        gets a few hundred receipts a second rather than one per message,
        which costs both sides less. What is held back goes out when the
        interval has passed (:meth:`on_wake`)."""
        due, sent = self._receipts_due, self._receipt_sent
        due.update(receipts)
        limit = now if force else now - RECEIPT_INTERVAL
        for identity in [i for i in due if sent.get(i, 0.0) <= limit]:
            sent[identity] = now
            self.send([identity, protocol.header(protocol.RECEIPT, due.pop(identity))])
        if due:
            self.loop.wake_at = min(self.loop.wake_at, now + RECEIPT_INTERVAL)

    def on_wake(self, now: float) -> None:
        """Send the cast receipts held back."""
        if self._receipts_due:
            self._receipt({}, now, force=True)

    def on_tick(self, now: float) -> None:
        """Receipts for calls whose reply is slow; forget clients gone quiet."""
        if len(self._receipt_sent) > 256:
            for identity, when in list(self._receipt_sent.items()):
                if when < now - 1.0:
                    del self._receipt_sent[identity]
        if self._unanswered:
            limit = now - CALL_RECEIPT_DELAY
            for key, when in list(self._unanswered.items()):
                if when < limit:
                    del self._unanswered[key]
                    self.send([key[0], protocol.header(protocol.RECEIPT, key[1])])


def _discard(table: dict[Any, list[ZmqSubscription]], key: Any, sub: ZmqSubscription) -> None:
    subs = table.get(key, [])
    if sub in subs:
        subs.remove(sub)
        if not subs:
            del table[key]
