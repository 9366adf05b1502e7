"""A listener's notification pools: which listeners of this socket consume
which (notification topic, pool), and the notifications they receive.

A notifier sends each notification once per pool, to one host of the pool
(see :mod:`rpccore_zmq.notifications`); here it goes to one listener of that
pool on this host, in turn. Notification listeners live apart from RPC
servers: a NOTIFY request reaches this table only, an RPC request never
does, so a notification topic and an RPC topic of the same name never meet.

What a pool's listeners here hold unacknowledged is bounded by the cell's
``notification_max_queue_length`` (the retention bound brokers apply to a
pool's backlog): beyond it a notification is dropped, counted as
``notifications_dropped`` and logged, rather than kept in memory without
end behind a listener that cannot keep up.

``REQUEUE`` redelivers a notification to a listener of the same pool on this
host (there is no broker to give it back to); when none listens here any
more, the requeue fails and the core counts and logs it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.subscription import RequestSource, ZmqIncoming, ZmqSubscription

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore_zmq.delivery import Delivery
    from rpccore_zmq.eventloop import EventLoop

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: (notification topic, pool code)
PoolKey = tuple[str, str]


class Pool:
    """The listeners of one pool here, whose turn is next, and how many
    notifications they hold unacknowledged."""

    __slots__ = ("subs", "turn", "held")

    def __init__(self) -> None:
        self.subs: list[ZmqSubscription] = []
        self.turn = 0
        self.held = 0

    def next_listener(self) -> ZmqSubscription | None:
        """The next open listener, in turn; None when none is open."""
        subs = list(self.subs)  # (requeues read it from other threads)
        for _ in range(len(subs)):
            self.turn = (self.turn + 1) % len(subs)
            if not subs[self.turn].closed:
                return subs[self.turn]
        return None


class NotificationIncoming(ZmqIncoming):
    """A notification delivered to one listener of its pool."""

    __slots__ = ("_pools", "_pool", "key")

    def __init__(self, body: bytes, identity: bytes, seq: int, source: RequestSource,
                 pools: PoolTable, pool: Pool, key: PoolKey) -> None:
        super().__init__(body, identity, seq, source, False)
        self._pools = pools
        #: the pool that counts it as held
        self._pool = pool
        self.key = key

    def ack(self) -> None:
        if not self._acked:
            self._pools.release(self._pool)
        super().ack()

    def requeue(self) -> bool:
        """Deliver it again to a listener of its pool on this host (see the
        module docstring); False (and acknowledged) when none is left."""
        return self._pools.requeue(self)


class PoolTable:
    """The notification listeners of one listener socket.

    Changed by the loop's leader; requeues and acknowledgements come from
    any thread.

    :param delivery: hands notifications to their listeners.
    :param on_delivered: (the leader) counts a request delivered, as the
        router does for every request (the socket stays open until each is
        acknowledged).
    """

    def __init__(self, loop: EventLoop, delivery: Delivery,
                 on_delivered: Callable[[], None]) -> None:
        self._loop = loop
        self._delivery = delivery
        self._on_delivered = on_delivered
        self._pools: dict[PoolKey, Pool] = {}
        #: pool codes listening here, by topic (the answer to POOLS)
        self._codes: dict[str, list[str]] = {}
        self._held_lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._pools)

    def subscriptions(self) -> list[ZmqSubscription]:
        return [sub for pool in self._pools.values() for sub in pool.subs]

    # -- listeners (the leader) ---------------------------------------------------

    def add(self, sub: ZmqSubscription) -> None:
        assert sub.pool is not None
        key = (sub.topic, sub.pool)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool()
            self._codes.setdefault(sub.topic, []).append(sub.pool)
        pool.subs.append(sub)

    def remove(self, sub: ZmqSubscription) -> None:
        sub.closed = True
        assert sub.pool is not None
        key = (sub.topic, sub.pool)
        pool = self._pools.get(key)
        if pool is None or sub not in pool.subs:
            return
        pool.subs = [s for s in pool.subs if s is not sub]  # a new list: readers copy
        if not pool.subs:
            del self._pools[key]
            codes = self._codes[sub.topic]
            codes.remove(key[1])
            if not codes:
                del self._codes[sub.topic]

    def close_all(self) -> None:
        for sub in self.subscriptions():
            sub.closed = True
        self._pools.clear()
        self._codes.clear()

    def answer(self, topic: str) -> bytes:
        """The answer to a POOLS request for ``topic``."""
        return protocol.encode_pools(self._codes.get(topic, []))

    # -- notifications (the leader) -----------------------------------------------

    def take(self, req: protocol.Request, source: RequestSource) -> bool:
        """Deliver the notification ``req`` to one listener of its pool
        here; False when none listens here (the notifier tries another host
        of the pool). A pool over its bound drops it (counted, logged)."""
        key = (req.topic, req.host)
        pool = self._pools.get(key)
        sub = pool.next_listener() if pool is not None else None
        if pool is None or sub is None:
            return False
        cap: int = sub.cell.options.notification_max_queue_length
        with self._held_lock:
            full = pool.held >= cap
            if not full:
                pool.held += 1
        if full:
            self._dropped(sub.cell, key, cap)
            return True
        self._on_delivered()
        self._delivery.deliver_later(
            sub, NotificationIncoming(req.body, req.identity, req.seq, source, self, pool, key))
        return True

    def _dropped(self, cell: CellView, key: PoolKey, cap: int) -> None:
        cell.stats.incr("notifications_dropped")
        _RATELOG.warning(f"full:{key}", "cell %s: dropped a notification of %r for pool %r: "
                         "its listeners on this host hold %d unacknowledged "
                         "(notification_max_queue_length)", cell.name, key[0],
                         protocol.pool_name(key[1]), cap)

    # -- any thread ---------------------------------------------------------------

    def release(self, pool: Pool) -> None:
        """A notification ``pool`` held was acknowledged."""
        with self._held_lock:
            pool.held -= 1

    def requeue(self, incoming: NotificationIncoming) -> bool:
        """Redeliver ``incoming`` to a listener of its pool here, through the
        loop; False (and it is acknowledged) when none is open."""
        pool = self._pools.get(incoming.key)
        if pool is None or all(sub.closed for sub in list(pool.subs)):
            incoming.ack()
            return False
        self._loop.submit(functools.partial(self._redeliver, incoming))
        return True

    def _redeliver(self, incoming: NotificationIncoming) -> None:
        """(The leader) hand a requeued notification to the next listener."""
        pool = self._pools.get(incoming.key)
        sub = pool.next_listener() if pool is not None else None
        if sub is None:  # its last listener stopped meanwhile
            incoming.ack()
            _RATELOG.warning("requeue", "a requeued notification of %r was dropped: no "
                             "listener of pool %r is left on this host", incoming.key[0],
                             protocol.pool_name(incoming.key[1]))
            return
        self._delivery.deliver_later(sub, incoming)
