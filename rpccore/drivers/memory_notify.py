"""Notifications on the built-in memory driver: the half of
:class:`~rpccore.drivers.memory.MemoryDriver` that carries them.

Like the memory driver's RPC half, it behaves as a broker would, inside the
process: each listener **pool** of a topic is a queue, made the first time
the pool listens and kept while none of its listeners runs (so
``stores_notifications`` is True), bounded by the listening cell's
``notification_max_queue_length`` (the oldest are dropped) and
``notification_ttl``; what it drops is counted (``notifications_dropped``,
in the cell of the pool's latest listener) and logged. A notification goes
at once, on the notifier's thread, to a listener of the pool that has room
(round-robin), and is delivered on the listener's own thread. A listener
holds at most ``server_queue_size + server_workers`` unacknowledged
notifications (a broker's prefetch). While a pool's running listeners are
all full, a notifier waits for room (until its deadline, then the
notification is queued all the same), as a cast's sender waits for a full
server: listeners that cannot keep up push back on the notifiers of their
process instead of growing a queue. A pool with no running listener queues
at once, up to its retention bounds. A requeued notification goes to the
back of its pool's queue; notifications that a closed listener had not yet
delivered go back to its front.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rpccore.driver import Driver, Incoming, Subscription
from rpccore.errors import TransportError
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore.stats import CellStats

LOG = logging.getLogger(__name__)

_PoolKey = tuple[str, str, str | None]  # namespace, topic, pool


@dataclass(slots=True)
class _Stored:
    body: bytes
    expires: float  # time.monotonic() value


class _Notification(Incoming):
    __slots__ = ("body", "_stored", "_listener")

    def __init__(self, stored: _Stored, listener: _PoolListener) -> None:
        self.body = stored.body
        self._stored = stored
        self._listener: _PoolListener | None = listener

    @property
    def can_reply(self) -> bool:
        return False

    def reply(self, body: bytes) -> None:
        """Nobody waits for a reply to a notification: dropped."""

    def ack(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:  # once
            listener.pool.settle(listener, None)

    def requeue(self) -> bool:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.pool.settle(listener, self._stored)
        return True


class _Pool:
    """One pool's queue and listeners; every method may be called from any thread."""

    def __init__(self, key: _PoolKey) -> None:
        self.key = key
        self.lock = threading.Lock()
        self._room = threading.Condition(self.lock)
        self._waiting = 0  # notifiers waiting for room
        self.backlog: collections.deque[_Stored] = collections.deque()
        self.listeners: list[_PoolListener] = []
        self._turn = 0
        # retention, and where drops are counted: from the latest listener
        self.max_length = 1
        self.ttl = 1.0
        self.stats: CellStats | None = None
        self.cell_name = ""
        self._ratelog = RateLimitedLog(LOG)

    def attach(self, listener: _PoolListener, cell: CellView) -> None:
        with self.lock:
            self.max_length = cell.options.notification_max_queue_length
            self.ttl = cell.options.notification_ttl
            self.stats, self.cell_name = cell.stats, cell.name
            self.listeners.append(listener)
            self._dispatch()

    def detach(self, listener: _PoolListener) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)
            listener.closed = True  # under the lock: nothing more reaches its inbox
            self._room.notify_all()  # with no listener left, nobody waits for room

    def give_back(self, listener: _PoolListener, stored: list[_Stored]) -> None:
        """What a closed listener took but never delivered, to the front."""
        with self.lock:
            listener.unacked -= len(stored)
            self.backlog.extendleft(reversed(stored))
            self._dispatch()

    def publish(self, body: bytes, deadline: float | None) -> None:
        with self.lock:
            if self.backlog and self.listeners:
                self._wait_for_room(deadline)
            now = time.monotonic()
            backlog = self.backlog
            while backlog and backlog[0].expires <= now:
                backlog.popleft()
                self._dropped("expired after notification_ttl", 1)
            if len(backlog) >= self.max_length:
                excess = len(backlog) - self.max_length + 1
                for _ in range(excess):
                    backlog.popleft()
                self._dropped("over notification_max_queue_length", excess)
            backlog.append(_Stored(body, now + self.ttl))
            self._dispatch(now)

    def _wait_for_room(self, deadline: float | None) -> None:
        """(Lock held) while the running listeners are all full (something
        is queued already), wait until the queue empties, as a cast's sender
        waits for a full server: a listener that cannot keep up pushes back
        on the notifiers of its process. Past ``deadline`` the notification
        is queued all the same."""
        self._waiting += 1
        try:
            while self.backlog and self.listeners:
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return
                self._room.wait(min(left, 1.0))
        finally:
            self._waiting -= 1

    def settle(self, listener: _PoolListener, requeued: _Stored | None) -> None:
        """A notification was acknowledged (``requeued`` None) or requeued."""
        with self.lock:
            listener.unacked -= 1
            if requeued is not None:
                self.backlog.append(requeued)
            if self.backlog:  # (nearly always empty: nothing waits for the room)
                self._dispatch()
            if self._waiting and not self.backlog:
                self._room.notify_all()

    def _dispatch(self, now: float | None = None) -> None:
        """(Lock held) hand queued notifications to listeners with room."""
        backlog, listeners = self.backlog, self.listeners
        if now is None:
            now = time.monotonic()
        while backlog and listeners:
            count = len(listeners)
            for step in range(count):
                listener = listeners[(self._turn + step) % count]
                if listener.unacked < listener.limit:
                    self._turn = (self._turn + step + 1) % count
                    break
            else:
                return  # every listener is full: it stays queued
            stored = backlog.popleft()
            if stored.expires <= now:
                self._dropped("expired after notification_ttl", 1)
                continue
            listener.unacked += 1
            listener.inbox.put(stored)

    def _dropped(self, why: str, count: int) -> None:
        if self.stats is not None:
            self.stats.incr("notifications_dropped", count)
        self._ratelog.warning(why, "cell %s: dropped %d notification(s) of topic %r for "
                              "pool %r: %s", self.cell_name, count, self.key[1],
                              self.key[2], why)


class _PoolListener(Subscription):
    """A listener of a pool: delivers on a thread of its own."""

    def __init__(self, pool: _Pool, on_message: Callable[[Incoming], None],
                 limit: int) -> None:
        self.pool = pool
        self.on_message = on_message
        self.limit = limit
        self.unacked = 0  # guarded by the pool's lock
        self.closed = False
        #: (a SimpleQueue: a put never blocks, so the pool puts under its lock)
        self.inbox: queue.SimpleQueue[_Stored | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._deliver, daemon=True,
                                        name=f"rpccore-memory-notify-{pool.key[1]}")
        self._thread.start()

    def _deliver(self) -> None:
        get = self.inbox.get
        while (stored := get()) is not None:
            if self.closed:
                self._return_rest(stored)
                return
            try:
                self.on_message(_Notification(stored, self))
            except Exception:  # the listener guards itself; never lose the thread
                LOG.exception("memory delivery of a notification of %s failed", self.pool.key)

    def _return_rest(self, first: _Stored) -> None:
        rest = [first]
        while (stored := self.inbox.get()) is not None:
            rest.append(stored)
        self.pool.give_back(self, rest)

    def close(self) -> None:
        if self.closed:
            return
        self.pool.detach(self)
        self.inbox.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)


class _Pools:
    """The pools of one memory namespace (``memory:///NAME``), by topic."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_key: dict[_PoolKey, _Pool] = {}
        #: (namespace, topic) -> its pools; replaced, never changed, so that
        #: a publisher reads it without the lock
        self.by_topic: dict[tuple[str, str], tuple[_Pool, ...]] = {}

    def delete(self, key: _PoolKey) -> None:
        """Forget a pool (its backlog goes with it); a listener still running
        keeps what it was handed."""
        with self.lock:
            found = self.by_key.pop(key, None)
            if found is None:
                return
            topic = key[:2]
            rest = tuple(p for p in self.by_topic.get(topic, ()) if p is not found)
            if rest:
                self.by_topic[topic] = rest
            else:
                self.by_topic.pop(topic, None)
        with found.lock:
            found.backlog.clear()

    def pool(self, key: _PoolKey) -> _Pool:
        with self.lock:
            found = self.by_key.get(key)
            if found is None:
                found = self.by_key[key] = _Pool(key)
                topic = key[:2]
                self.by_topic[topic] = (*self.by_topic.get(topic, ()), found)
            return found


_namespaces: dict[str, _Pools] = {}
_namespaces_lock = threading.Lock()


def _pools(name: str) -> _Pools:
    with _namespaces_lock:
        return _namespaces.setdefault(name, _Pools())


class MemoryNotifications(Driver):
    """The notification half of the memory driver (see the module docstring);
    the memory driver derives from it."""

    stores_notifications = True

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self._notification_pools = _pools(cell.url.virtual_host or "")
        self._notification_namespace: str = cell.options.control_exchange
        #: running listeners (their threads keep them alive; closed ones go)
        self._listeners: weakref.WeakSet[_PoolListener] = weakref.WeakSet()
        self._listeners_lock = threading.Lock()
        self._notifications_closed = False

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        if self._notifications_closed:
            raise TransportError(f"cell {self.cell.name}: the memory driver is closed")
        pools = self._notification_pools.by_topic.get((self._notification_namespace, topic))
        if not pools:
            return  # nobody ever listened: nothing keeps it (see Driver.notify)
        body = bytes(body)
        for pool in pools:
            pool.publish(body, deadline)

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        if self._notifications_closed:
            raise TransportError(f"cell {self.cell.name}: the memory driver is closed")
        options = self.cell.options
        found = self._notification_pools.pool((self._notification_namespace, topic, pool))
        listener = _PoolListener(found, on_message,
                                 options.server_queue_size + options.server_workers)
        with self._listeners_lock:
            self._listeners.add(listener)
        found.attach(listener, self.cell)
        return listener

    def delete_pool(self, topic: str, pool: str | None) -> None:
        self._notification_pools.delete((self._notification_namespace, topic, pool))

    def close_listeners(self) -> None:
        """Stop every listener of this driver (part of ``close()``)."""
        self._notifications_closed = True
        with self._listeners_lock:
            listeners = list(self._listeners)
            self._listeners.clear()
        for listener in listeners:
            listener.close()
