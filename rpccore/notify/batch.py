"""Gathering a batch listener's notifications into lists."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.notify.message import Notification

if TYPE_CHECKING:
    from rpccore.driver import Incoming

#: a batch: each notification with the message it came in (to settle it)
Batch = list[tuple["Incoming", Notification]]


class BatchCollector:
    """Takes messages from ``source`` (on a thread of its own, :meth:`run`),
    opens them with ``open_message`` and hands lists of up to ``size`` to
    ``deliver``: as soon as a list is full, and at the latest ``timeout``
    seconds after its first notification came (``None``: only when full).
    At ``stop_marker`` it hands on what it holds and returns.
    """

    def __init__(self, size: int, timeout: float | None,
                 source: queue.SimpleQueue[object],
                 open_message: Callable[[Incoming], Notification | None],
                 deliver: Callable[[Batch], None], stop_marker: object) -> None:
        self.size = size
        self.timeout = timeout
        self._source = source
        self._open = open_message
        self._deliver = deliver
        self._stop = stop_marker

    def _next(self, batch: Batch, started: float) -> object | None:
        """The next message, or None when the batch's time is up."""
        if not batch or self.timeout is None:
            return self._source.get()
        left = started + self.timeout - time.monotonic()
        if left <= 0:
            return None
        try:
            return self._source.get(timeout=left)
        except queue.Empty:
            return None

    def run(self) -> None:
        batch: Batch = []
        started = 0.0
        while True:
            item = self._next(batch, started)
            if item is None or item is self._stop:
                if batch:
                    self._deliver(batch)
                    batch = []
                if item is self._stop:
                    return
                continue
            incoming: Incoming = item  # type: ignore[assignment]
            note = self._open(incoming)
            if note is None:  # dropped (counted and acknowledged by open_message)
                continue
            if not batch:
                started = time.monotonic()
            batch.append((incoming, note))
            if len(batch) >= self.size:
                self._deliver(batch)
                batch = []
