"""A bounded hand-off queue that is cheap when it is not full."""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """``put`` blocks while ``maxsize`` items wait; ``get`` blocks while none do.

    ``queue.Queue`` takes two condition variables per item; this takes none
    unless a producer is actually waiting for room, which is the rare case
    (a server pushing back on its transport).
    """

    def __init__(self, maxsize: int) -> None:
        self._items: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._maxsize = maxsize
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0

    def put(self, item: T) -> None:
        if self._items.qsize() >= self._maxsize:
            with self._room:
                self._waiting += 1
                try:
                    while self._items.qsize() >= self._maxsize:
                        # The timeout only guards against a lost wake-up.
                        self._room.wait(1.0)
                finally:
                    self._waiting -= 1
        self._items.put(item)

    def put_nowait_unbounded(self, item: T) -> None:
        """Add ``item`` even when full (control items such as stop markers)."""
        self._items.put(item)

    def get(self) -> T:
        item = self._items.get()
        if self._waiting:
            with self._room:
                self._room.notify()
        return item

    def qsize(self) -> int:
        return self._items.qsize()
