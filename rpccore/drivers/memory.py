"""The built-in in-process driver: ``transport_url = memory://[/NAME]``.

Every ``RPC`` object of a process that uses the same URL path shares one
in-process exchange, so servers and clients built from separate ``RPC``
objects (as in applications' tests) reach each other; ``memory:///other`` is
a separate one. Semantics match the network drivers: topic work is shared
round-robin, host-directed and fanout delivery, replies, and every message
goes through the real envelope. Each subscription delivers on a thread of
its own, as a network driver's I/O thread would (never on the sender's).

Like a broker's prefetch, a subscription holds at most ``server_queue_size +
server_workers`` messages that were delivered or wait to be and are not
acknowledged yet; a sender to a full subscription waits (until the call's
deadline, or for a cast until there is room), so a server that cannot keep up
pushes back on the senders of its process instead of growing a queue.

Notifications (``notify``, ``listen``) are carried by the base class
:class:`~rpccore.drivers.memory_notify.MemoryNotifications`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.destination import Destination
from rpccore.driver import Incoming, ReplyHandler, Subscription
from rpccore.driverkit import Mailbox
from rpccore.drivers.memory_notify import MemoryNotifications
from rpccore.errors import Timeout, TransportError, Undeliverable

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)

_Key = tuple[str, ...]


class _MemoryIncoming(Incoming):
    __slots__ = ("body", "_on_reply", "_sub", "_owner")

    def __init__(self, body: bytes, on_reply: ReplyHandler | None,
                 sub: _MemorySubscription) -> None:
        self.body = body
        self._on_reply = on_reply
        self._sub: _MemorySubscription | None = sub
        self._owner = sub

    @property
    def can_reply(self) -> bool:
        return self._on_reply is not None

    def reply(self, body: bytes) -> None:
        if self._on_reply is not None:
            self._on_reply(bytes(body))

    def hand_off(self) -> None:
        """Leave the subscription's deliveries to a new thread while this one,
        the thread that delivered the message, goes on running it: what a
        leader/follower driver does in ``release_thread`` (the memory driver
        is not one; tests of the core's side make it one)."""
        self._owner.hand_off()

    def ack(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:  # once: the room it took is given back once
            sub.done()


class _Exchange:
    """Consumers of one memory namespace, by (exchange, topic[, host])."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.shared: dict[_Key, list[_MemorySubscription]] = {}
        self.direct: dict[_Key, list[_MemorySubscription]] = {}
        self.turn = itertools.count()

    def add(self, sub: _MemorySubscription) -> None:
        with self.lock:
            self.shared.setdefault(sub.topic_key, []).append(sub)
            if sub.host_key is not None:
                self.direct.setdefault(sub.host_key, []).append(sub)

    def remove(self, sub: _MemorySubscription) -> None:
        with self.lock:
            for table, key in ((self.shared, sub.topic_key), (self.direct, sub.host_key)):
                subs = table.get(key) if key is not None else None
                if subs and sub in subs:
                    subs.remove(sub)
                    if not subs:
                        del table[key]  # type: ignore[arg-type]

    def targets(self, namespace: str, dest: Destination) -> list[_MemorySubscription]:
        with self.lock:
            if dest.fanout:
                return list(self.shared.get((namespace, dest.topic), ()))
            if dest.host is not None:
                subs = self.direct.get((namespace, dest.topic, dest.host))
            else:
                subs = self.shared.get((namespace, dest.topic))
            if not subs:
                return []
            return [subs[next(self.turn) % len(subs)]]


_exchanges: dict[str, _Exchange] = {}
_exchanges_lock = threading.Lock()


def _exchange(name: str) -> _Exchange:
    with _exchanges_lock:
        return _exchanges.setdefault(name, _Exchange())


class _MemorySubscription(Subscription):
    def __init__(self, exchange: _Exchange, namespace: str, dest: Destination,
                 on_message: Callable[[Incoming], None], limit: int) -> None:
        self._exchange = exchange
        self.dest = dest
        #: messages taken and not acknowledged, and how many may be
        self._unacked = 0
        self._limit = limit
        self._room = threading.Condition(threading.Lock())
        self._closed = False
        self.topic_key: _Key = (namespace, dest.topic)
        self.host_key: _Key | None = (
            (namespace, dest.topic, dest.host) if dest.host is not None else None)
        self.on_message = on_message
        #: messages for the delivering thread (None: stop)
        self._inbox: Mailbox[Incoming | None] = Mailbox()
        self._thread = self._new_thread()
        self._thread.start()
        exchange.add(self)

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._deliver, daemon=True,
                                name=f"rpccore-memory-{self.dest.topic}")

    def hand_off(self) -> None:
        """See :meth:`_MemoryIncoming.hand_off`."""
        with self._room:
            if threading.current_thread() is self._thread and not self._closed:
                # named the delivering thread before it runs: it checks that
                thread = self._thread = self._new_thread()
                thread.start()

    def put(self, body: bytes, on_reply: ReplyHandler | None,
            deadline: float | None) -> None:
        """Queue a message, first waiting for room (see the module docstring).

        :raises Timeout: no room before ``deadline`` (a call's).
        """
        with self._room:
            if (self._unacked >= self._limit
                    and threading.current_thread() is not self._thread):
                # (its own delivery thread never waits: it is what makes room)
                while self._unacked >= self._limit and not self._closed:
                    wait = 1.0 if deadline is None else deadline - time.monotonic()
                    if wait <= 0:
                        raise Timeout(f"{self.dest} is busy: {self._unacked} requests "
                                      "wait for its server and no room came before "
                                      "the deadline")
                    self._room.wait(min(wait, 1.0))
            self._unacked += 1
        self._inbox.put(_MemoryIncoming(body, on_reply, self))

    def done(self) -> None:
        with self._room:
            self._unacked -= 1
            self._room.notify()

    def _deliver(self) -> None:
        get, on_message = self._inbox.get, self.on_message
        me = threading.current_thread()
        while True:
            incoming = get()
            if incoming is None:
                return
            try:
                on_message(incoming)
            except Exception:  # the server guards itself; never lose the thread
                LOG.exception("memory delivery to %s failed", self.topic_key)
            if self._thread is not me:  # handed off: another thread delivers now
                return

    def close(self) -> None:
        self._exchange.remove(self)
        with self._room:
            self._closed = True  # senders waiting for room give up waiting
            self._room.notify_all()
        self._inbox.put(None)
        with self._room:
            thread = self._thread
        if thread is not threading.current_thread():
            thread.join(timeout=10)


class MemoryDriver(MemoryNotifications):
    """In-process transport; see the module docstring (and
    :mod:`rpccore.drivers.memory_notify` for notifications)."""

    detects_undeliverable = True

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self._exchange = _exchange(cell.url.virtual_host or "")
        self._namespace: str = cell.options.control_exchange
        self._subs: list[_MemorySubscription] = []
        self._closed = False

    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        if self._closed:
            raise TransportError(f"cell {self.cell.name}: the memory driver is closed")
        targets = self._exchange.targets(self._namespace, dest)
        if not targets:
            if on_reply is not None or confirm:
                raise Undeliverable(f"nobody consumes {dest} in cell {self.cell.name}")
            self.cell.stats.incr("returned")
            LOG.warning("cell %s: cast to %s dropped: nobody consumes it",
                        self.cell.name, dest)
            return
        body = bytes(body)
        for sub in targets:
            sub.put(body, on_reply, deadline)

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        if self._closed:
            raise TransportError(f"cell {self.cell.name}: the memory driver is closed")
        options = self.cell.options
        sub = _MemorySubscription(self._exchange, self._namespace, dest, on_message,
                                  options.server_queue_size + options.server_workers)
        self._subs.append(sub)
        return sub

    def close(self) -> None:
        self._closed = True
        self.close_listeners()
        for sub in self._subs:
            sub.close()
        self._subs.clear()
