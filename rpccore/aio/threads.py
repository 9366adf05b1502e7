"""Threads that are not the event loop's, for everything that may block.

A driver's ``send`` may block: on rabbit a call waits for the broker's
publisher confirm, on every driver for a connection after a broker restart
(a driver that would wait for a call's reply, zmq, is told that the caller
waits elsewhere: :data:`rpccore.driver.caller_elsewhere`). None of it may
run on the event loop's thread, so :class:`SendThreads` runs it. Each job
runs in a copy of the submitting task's context variables, so what an
application or a tracer keeps there (the current span) follows the request.

How many threads: as few as keep up. A few threads carry any number of
quick sends (memory, qpid, zmq, rabbit's confirms); more only contend for
the GIL with the event loop. So the pool runs at most ``busy`` threads on
sends that are quick. A send that has taken over :data:`STUCK_AFTER`
seconds (a broker being restarted) no longer counts: another thread takes
the next job, so slow sends never hold up the others, up to ``limit``
threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rpccore.aio.inbox import LoopInbox, settle
from rpccore.errors import TransportError

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: seconds a thread waits for work before it ends
IDLE_SECONDS = 30.0
#: seconds after which a running job counts as stuck (see the module
#: docstring): longer than a broker's publisher confirm or a quick call takes
STUCK_AFTER = 0.05

_Job = tuple[contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class SendThreads:
    """A pool of daemon threads running submitted callables, in order.

    :param limit: most threads at once (stuck ones included).
    :param busy: most threads on jobs that are not stuck.

    Starting a thread waits until it runs, so a spawner thread of the
    pool's own starts them, never the submitting thread (an event loop's).
    """

    def __init__(self, limit: int, busy: int = 8, name: str = "rpccore-aio") -> None:
        if limit < 1:
            raise ValueError(f"send_threads must be 1 or more, not {limit}")
        self.limit = limit
        self.busy = min(busy, limit)
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a job, and threads starting
        #: when each thread's running job started, by thread
        self._started: dict[int, float] = {}
        self._wanted = threading.Event()  # wakes the spawner
        self._spawner: threading.Thread | None = None
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads run now."""
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on one of the threads, in a copy of the caller's
        context. What it raises is logged: ``fn`` reports its own outcome.

        :raises TransportError: the pool is closed.
        """
        if self._closed:
            raise TransportError("this rpccore.aio.RPC is closed")
        self._jobs.put((contextvars.copy_context(), fn, args))
        if self._idle == 0 and self._threads < self.limit:  # a hint; the spawner checks
            self._want_thread()

    def _want_thread(self) -> None:
        if self._spawner is None:
            with self._lock:
                if self._spawner is None and not self._closed:
                    self._spawner = threading.Thread(target=self._spawn, daemon=True,
                                                     name=f"{self._name}-spawner")
                    self._spawner.start()
        self._wanted.set()

    def _spawn(self) -> None:
        while True:
            # While jobs wait, look again once running ones may have got stuck.
            self._wanted.wait(None if self._jobs.empty() else STUCK_AFTER / 2)
            self._wanted.clear()  # before looking: a later request wakes us again
            while self._start_one():
                pass
            if self._closed:
                return

    def _start_one(self) -> bool:
        """Start a thread if a job waits for one and the limits allow."""
        with self._lock:
            if self._closed or self._idle or self._threads >= self.limit \
                    or self._jobs.empty():
                return False
            now = time.monotonic()
            running = sum(1 for started in self._started.values()
                          if now - started < STUCK_AFTER)
            if running >= self.busy:
                return False
            self._threads += 1
            self._idle += 1  # counted as idle until it takes its first job
            number = self._threads
        threading.Thread(target=self._work, daemon=True, name=f"{self._name}-{number}").start()
        return True

    def _work(self) -> None:
        get, lock, jobs, started = self._jobs.get, self._lock, self._jobs, self._started
        me = threading.get_ident()
        while True:
            try:
                job = get(timeout=IDLE_SECONDS)
            except queue.Empty:
                job = None
            with lock:
                if job is None:
                    if self._closed or jobs.empty():
                        self._idle -= 1
                        self._threads -= 1
                        return
                    continue  # idle, but work came at the last moment
                self._idle -= 1
                started[me] = time.monotonic()
            if self._idle == 0 and not jobs.empty():
                self._wanted.set()  # more work than threads: the spawner decides
            context, fn, args = job
            try:
                context.run(fn, *args)
            except Exception:
                LOG.exception("rpccore.aio: a job on %s failed", threading.current_thread().name)
            with lock:
                del started[me]
                self._idle += 1

    def close(self) -> None:
        """Let the jobs queued so far run, then end every thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = self._threads
        self._wanted.set()
        for _ in range(count):
            self._jobs.put(None)


def _run_and_settle(inbox: LoopInbox, future: asyncio.Future[Any],
                    fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        result = fn(*args)
    except BaseException as exc:  # handed to the awaiting task, which re-raises it
        inbox.put(settle, (future, None, exc))
    else:
        inbox.put(settle, (future, result, None))


async def off_loop(threads: SendThreads, inbox: LoopInbox, fn: Callable[..., T],
                   *args: Any) -> T:
    """``fn(*args)`` run on ``threads``, awaited on ``inbox``'s loop.

    Cancelling the awaiting task does not stop ``fn``: its result is dropped.
    """
    future: asyncio.Future[T] = inbox.loop.create_future()
    threads.submit(_run_and_settle, inbox, future, fn, args)
    return await future


async def in_own_thread(inbox: LoopInbox, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` run on a new thread of its own, awaited on ``inbox``'s
    loop: for what is rare and must never wait behind sends held up by a
    busy backend (starting, stopping and closing; discovering a version cap).
    """
    future: asyncio.Future[T] = inbox.loop.create_future()
    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(_run_and_settle, inbox, future, fn, args),
                     daemon=True, name=f"rpccore-aio-{getattr(fn, '__name__', 'job')}").start()
    return await future
