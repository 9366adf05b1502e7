"""The built-in in-process driver: ``transport_url = memory://[/NAME]``.

Every ``RPC`` object of a process that uses the same URL path shares one
in-process exchange, so servers and clients built from separate ``RPC``
objects (as in applications' tests) reach each other; ``memory:///other`` is
a separate one. Semantics match the network drivers: topic work is shared
round-robin, host-directed and fanout delivery, replies, and every message
goes through the real envelope. Delivery happens on the sender's thread,
into the server's bounded queue.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.destination import Destination
from rpccore.driver import Driver, Incoming, ReplyHandler, Subscription
from rpccore.errors import TransportError, Undeliverable

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)

_Key = tuple[str, ...]


class _MemoryIncoming(Incoming):
    __slots__ = ("body", "_on_reply")

    def __init__(self, body: bytes, on_reply: ReplyHandler | None) -> None:
        self.body = body
        self._on_reply = on_reply

    @property
    def can_reply(self) -> bool:
        return self._on_reply is not None

    def reply(self, body: bytes) -> None:
        if self._on_reply is not None:
            self._on_reply(bytes(body))


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
                 on_message: Callable[[Incoming], None]) -> None:
        self._exchange = exchange
        self.topic_key: _Key = (namespace, dest.topic)
        self.host_key: _Key | None = (
            (namespace, dest.topic, dest.host) if dest.host is not None else None)
        self.on_message = on_message
        exchange.add(self)

    def close(self) -> None:
        self._exchange.remove(self)


class MemoryDriver(Driver):
    """In-process transport; see the module docstring."""

    detects_undeliverable = True
    on_message_may_block = True  # delivery runs on the sender's thread

    def __init__(self, cell: Cell) -> None:
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
        for sub in targets:
            sub.on_message(_MemoryIncoming(bytes(body), on_reply))

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        if self._closed:
            raise TransportError(f"cell {self.cell.name}: the memory driver is closed")
        sub = _MemorySubscription(self._exchange, self._namespace, dest, on_message)
        self._subs.append(sub)
        return sub

    def close(self) -> None:
        self._closed = True
        for sub in self._subs:
            sub.close()
        self._subs.clear()
