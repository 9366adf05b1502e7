"""Handing received messages to rpccore on threads of the driver.

The loop thread never runs ``on_message`` itself: an endpoint that runs
inline (``workers=0``) or calls out through the same driver would stall
every connection of the driver. Each subscription has a
:class:`Deliverer`: a queue and the threads that take from it. A thread that
took a request may keep it (``Incoming.release_thread``, leader/follower):
another thread then takes over the queue, so a server runs quick requests on
the thread that received them, with no further hand-off.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from rpccore.driver import Incoming

LOG = logging.getLogger(__name__)

#: Idle threads a deliverer keeps; more end after their request. Above 2, so
#: that a server running two or three quick requests at once (casts in a
#: burst) does not start and end a thread for every overlap.
MAX_IDLE = 4

_STOP = object()


class Deliverer:
    """Threads that call ``on_message`` for one subscription, in turn."""

    def __init__(self, on_message: Callable[[Incoming], None], name: str) -> None:
        self._on_message = on_message
        self._name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self.closed = False
        self._spawn(counted=False)

    def put(self, incoming: Incoming) -> None:
        """Queue a message (loop thread)."""
        self._queue.put(incoming)

    def pending(self) -> int:
        return self._queue.qsize()

    def _spawn(self, counted: bool) -> None:
        """A new thread; ``counted``: already counted as idle by the caller."""
        thread = threading.Thread(target=self._main, args=(counted,), daemon=True,
                                  name=self._name)
        self._threads.add(thread)
        thread.start()

    def release(self) -> bool:
        """Let the calling thread keep its request: make sure another thread
        waits on the queue. Always possible, so always True.

        The first look is without the lock (the common case, an idle thread
        waiting, costs nothing): an idle thread that takes a message right
        after it could as well have taken it right after a locked look, and
        it then calls this itself or goes back to the queue."""
        if self._idle == 0 and not self.closed:
            with self._lock:
                if self._idle == 0 and not self.closed:
                    self._idle += 1  # counted now: a second release must not spawn again
                    self._spawn(counted=True)
        return True

    def _main(self, counted: bool = False) -> None:
        get, lock = self._queue.get, self._lock
        me = threading.current_thread()
        try:
            if not counted:
                with lock:
                    self._idle += 1
            while True:
                item = get()
                with lock:
                    self._idle -= 1
                if item is _STOP:
                    return
                try:
                    self._on_message(item)  # type: ignore[arg-type]
                except Exception:  # the server guards itself; never lose the thread
                    LOG.exception("%s: delivering a message failed", self._name)
                with lock:  # idle again, unless enough threads are
                    if self._idle >= MAX_IDLE:
                        return
                    self._idle += 1
        finally:
            with lock:
                self._threads.discard(me)

    def close(self, timeout: float) -> list[object]:
        """Hand what is queued to ``on_message`` (for at most ``timeout``
        seconds), then stop the threads. Returns what was still queued then
        (the caller gives those back to the backend or drops them)."""
        end = time.monotonic() + timeout
        while self._queue.qsize() and time.monotonic() < end:
            time.sleep(0.005)
        with self._lock:
            self.closed = True
            threads = list(self._threads)
        left: list[object] = []
        try:
            while True:
                item = self._queue.get_nowait()
                if item is not _STOP:
                    left.append(item)
        except queue.Empty:
            pass
        for _ in threads:
            self._queue.put(_STOP)
        me = threading.current_thread()
        for thread in threads:
            if thread is not me:
                thread.join(max(0.0, end - time.monotonic()) + 0.5)
        return left
