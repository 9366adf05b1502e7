"""Handing received messages to rpccore on threads of the driver.

The loop thread never runs ``on_message`` itself: an endpoint that runs
inline (``workers=0``) or calls out through the same driver would stall
every connection of the driver. Each subscription has a
:class:`Deliverer`: a queue of batches and the threads that take from it.

What the loop receives in one turn (nats-py hands it every message parsed
from one read) goes to the queue as one batch, at the end of that turn: one
thread is woken per batch, not one per message, which is what a burst of
casts costs most on a shared GIL. A thread delivers its batch in order. A
thread that took a request may keep it (``Incoming.release_thread``,
leader/follower): another thread then takes over the queue, so a server runs
quick requests on the thread that received them, with no further hand-off.
What is left of the batch stays with the thread when the request is known
to be quick (its method's recent runs took under :data:`QUICK`); otherwise
it goes back to the front of the queue, for another thread, so that nothing
waits behind a request that may block and nothing overtakes it either.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable

from rpccore.driver import Incoming

LOG = logging.getLogger(__name__)

#: Idle threads a deliverer keeps; more end after their batch. Above 2, so
#: that a server running two or three quick requests at once (casts in a
#: burst) does not start and end a thread for every overlap.
MAX_IDLE = 4
#: A request whose method's recent runs took less than this many seconds
#: keeps the rest of its batch on its thread (see Deliverer.release).
QUICK = 0.0002

_STOP = object()

Batch = collections.deque[Incoming]


class Deliverer:
    """Threads that call ``on_message`` for one subscription, in turn.

    :param call_soon: the loop's ``call_soon`` (what :meth:`put` is called
        on), which hands a turn's messages over at its end.
    """

    def __init__(self, on_message: Callable[[Incoming], None], name: str,
                 call_soon: Callable[[Callable[[], None]], object]) -> None:
        self._on_message = on_message
        self._name = name
        self._call_soon = call_soon
        #: received in this turn of the loop, not yet queued (loop thread)
        self._gathering: Batch = collections.deque()
        #: batches for the threads (deque operations are atomic); one token
        #: in ``_tokens`` per batch, so a thread that took a token finds one
        self._batches: collections.deque[Batch | object] = collections.deque()
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        #: the batch each thread is delivering
        self._local = threading.local()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self.closed = False
        self._spawn(counted=False)

    def put(self, incoming: Incoming) -> None:
        """Queue a message (loop thread); queued for the threads at the end
        of this turn of the loop, with the others received in it."""
        if not self._gathering:
            self._call_soon(self._hand_over)
        self._gathering.append(incoming)

    def _hand_over(self) -> None:
        batch, self._gathering = self._gathering, collections.deque()
        self._queue(batch)

    def _queue(self, item: Batch | object, front: bool = False) -> None:
        if front:
            self._batches.appendleft(item)
        else:
            self._batches.append(item)
        self._tokens.put(None)

    def _take(self) -> Batch | object:
        while True:
            self._tokens.get()
            try:
                return self._batches.popleft()
            except IndexError:  # its batch was taken back by close()
                continue

    def pending(self) -> int:
        """Messages received and not handed to a thread yet."""
        return len(self._gathering) + sum(
            len(b) for b in list(self._batches) if type(b) is collections.deque)

    def _spawn(self, counted: bool) -> None:
        """A new thread; ``counted``: already counted as idle by the caller."""
        thread = threading.Thread(target=self._main, args=(counted,), daemon=True,
                                  name=self._name)
        self._threads.add(thread)
        thread.start()

    def release(self, expected: float | None = None) -> bool:
        """Let the calling thread keep its request: make sure another thread
        waits on the queue, and unless the request is known to be quick
        (``expected`` seconds, under :data:`QUICK`), put the rest of this
        thread's batch back at the front of the queue. Always possible, so
        always True.

        The first look at the idle count is without the lock (the common
        case, an idle thread waiting, costs nothing): an idle thread that
        takes a batch right after it could as well have taken it right
        after a locked look, and it then calls this itself or goes back to
        the queue."""
        if expected is None or expected >= QUICK:
            rest = getattr(self._local, "batch", None)
            if rest:
                self._local.batch = None
                self._queue(rest, front=True)
        if self._idle == 0 and not self.closed:
            with self._lock:
                if self._idle == 0 and not self.closed:
                    self._idle += 1  # counted now: a second release must not spawn again
                    self._spawn(counted=True)
        return True

    def _deliver(self, batch: Batch) -> None:
        """Hand ``batch`` over, in order, until done or given away."""
        local = self._local
        local.batch = batch
        try:
            while (rest := local.batch) is not None and rest:
                incoming = rest.popleft()
                try:
                    self._on_message(incoming)
                except Exception:  # the server guards itself; never lose the thread
                    LOG.exception("%s: delivering a message failed", self._name)
        finally:
            local.batch = None

    def _main(self, counted: bool = False) -> None:
        lock = self._lock
        me = threading.current_thread()
        try:
            if not counted:
                with lock:
                    self._idle += 1
            while True:
                item = self._take()
                with lock:
                    self._idle -= 1
                if item is _STOP:
                    return
                self._deliver(item)  # type: ignore[arg-type]
                with lock:  # idle again, unless enough threads are
                    if self._idle >= MAX_IDLE:
                        return
                    self._idle += 1
        finally:
            with lock:
                self._threads.discard(me)

    def close(self, timeout: float) -> list[Incoming]:
        """Hand what is queued to ``on_message`` (for at most ``timeout``
        seconds), then stop the threads. Returns what was still queued then
        (the caller gives those back to the backend or drops them)."""
        end = time.monotonic() + timeout
        while self.pending() and time.monotonic() < end:
            time.sleep(0.005)
        with self._lock:
            self.closed = True
            threads = list(self._threads)
        left: list[Incoming] = list(self._gathering)
        self._gathering.clear()
        while True:
            try:
                item = self._batches.popleft()
            except IndexError:
                break
            if type(item) is collections.deque:
                left.extend(item)
        for _ in threads:
            self._queue(_STOP)
        me = threading.current_thread()
        for thread in threads:
            if thread is not me:
                thread.join(max(0.0, end - time.monotonic()) + 0.5)
        return left
