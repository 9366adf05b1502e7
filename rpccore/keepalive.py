"""Keepalives: one thread per process that reminds callers a request still runs.

A call made with ``heartbeat=H`` asks its server for a sign of life at least
every ``H/2`` seconds while the method runs. The worker running the method
cannot send them (it is busy in the method), so a single daemon thread sends
them for every such request of the process, from a heap of due times.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Protocol

LOG = logging.getLogger(__name__)


class Beating(Protocol):
    """What the keepalive thread needs of a request."""

    @property
    def finished(self) -> bool: ...

    def keepalive(self) -> None: ...


class Keepalives:
    """Sends ``keepalive()`` to registered requests every interval until they finish."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, float, Beating]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def start(self, request: Beating, interval: float) -> None:
        """Keep ``request`` alive every ``interval`` seconds (the first one
        after ``interval``) until ``request.finished``."""
        interval = max(interval, 0.01)
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + interval, next(self._order),
                                        interval, request))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="rpccore-keepalives")
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                due, order, interval, request = self._heap[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if request.finished:
                continue
            try:
                request.keepalive()
            except Exception:  # one failing reply path must not stop the others
                LOG.exception("sending a keepalive failed")
            with self._cond:
                heapq.heappush(self._heap, (time.monotonic() + interval, order, interval,
                                            request))


#: the process's keepalive thread (started on first use)
KEEPALIVES = Keepalives()
