"""A bounded hand-off queue that wakes one consumer per item."""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class _Waiter(Generic[T]):
    """A consumer parked in :meth:`BoundedQueue.get`: its own lock, held
    until a producer hands it an item."""

    __slots__ = ("lock", "item")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.item: T | None = None


class BoundedQueue(Generic[T]):
    """``put`` blocks while ``maxsize`` items wait; ``get`` blocks while none do.

    Each idle consumer waits on a lock of its own, and a producer hands an
    item straight to the consumer that went idle last (it is the likeliest
    to be warm in the CPU's caches). One item wakes exactly one thread:
    ``queue.SimpleQueue`` wakes a second waiting consumer for every item it
    hands out (that one finds nothing and goes back to sleep, fighting the
    others for the GIL on the way), and ``queue.Queue`` takes two condition
    variables per item. A producer only waits on a condition when the queue
    is full, the rare case (a server pushing back on its transport).
    """

    def __init__(self, maxsize: int) -> None:
        self._items: collections.deque[T] = collections.deque()
        self._idle: list[_Waiter[T]] = []
        self._maxsize = maxsize
        self._mutex = threading.Lock()
        self._room = threading.Condition(self._mutex)
        self._waiting = 0

    def put(self, item: T) -> None:
        with self._mutex:
            while len(self._items) >= self._maxsize:
                self._waiting += 1
                try:
                    # The timeout only guards against a lost wake-up.
                    self._room.wait(1.0)
                finally:
                    self._waiting -= 1
            self._hand_over(item)

    def put_nowait_unbounded(self, item: T) -> None:
        """Add ``item`` even when full (control items such as stop markers)."""
        with self._mutex:
            self._hand_over(item)

    def _hand_over(self, item: T) -> None:
        # with the mutex held
        if self._idle:
            waiter = self._idle.pop()
            waiter.item = item
            waiter.lock.release()
        else:
            self._items.append(item)

    def get(self) -> T:
        with self._mutex:
            if self._items:
                item = self._items.popleft()
                if self._waiting:
                    self._room.notify()
                return item
            waiter: _Waiter[T] = _Waiter()
            self._idle.append(waiter)
            if self._waiting:  # a producer waits for room: hand it this consumer
                self._room.notify()
        waiter.lock.acquire()
        return cast(T, waiter.item)

    def qsize(self) -> int:
        return len(self._items)
