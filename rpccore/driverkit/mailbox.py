"""Work handed from any thread to one consumer thread, with a wake-up.

A driver's I/O thread owns its sockets or its broker connection; other
threads (callers, servers replying) hand it work through a
:class:`Mailbox`. The consumer sleeps in one of three ways:

- **on the mailbox alone** (a delivery thread, a reader of replies):
  :meth:`Mailbox.get` blocks until an item comes;
- **on file descriptors** (an I/O thread that also waits for its sockets):
  it adds :meth:`Mailbox.fileno` to what it polls and brackets each wait
  with :meth:`Mailbox.sleeping` and :meth:`Mailbox.woken`; or, with
  ``select``, simply calls :meth:`Mailbox.wait`. An item put while the
  consumer sleeps makes that descriptor readable (one byte through a pipe).
  While the consumer is awake, :meth:`Mailbox.put` costs no system call;
- **in a library's event loop** that the driver does not control (a proton
  reactor, say): give the mailbox that loop's own wake-up
  (``Mailbox(wake=injector_trigger)``). The first put after the consumer
  last took its items calls it, once for a whole burst of puts.

Example, an I/O thread that waits for its socket and for work::

    while running:
        for item in mailbox.take():
            item()                       # work other threads submitted
        if sock in mailbox.wait(timeout=0.05, fds=[sock]):
            read(sock)
    mailbox.close()

    # any other thread:
    mailbox.put(lambda: send_on(sock, frame))
"""

from __future__ import annotations

import os
import queue
import select
import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

__all__ = ["Empty", "Mailbox"]

T = TypeVar("T")

#: Raised by :meth:`Mailbox.get` when nothing came in time.
Empty = queue.Empty


class _HasFileno(Protocol):
    def fileno(self) -> int: ...


class Mailbox(Generic[T]):
    """Items from any thread, in order, for one consumer thread.

    :meth:`put` (and :meth:`wake`) may be called from any thread; the rest
    only from the consumer.
    """

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        """``wake``: the wake-up of an event loop the consumer runs in (see
        the module docstring); then :meth:`fileno` and its kin are unused."""
        self._items: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._external_wake = wake
        #: (with ``wake``) it was called since the consumer last took items
        self._signalled = False
        #: the consumer is (about to be) asleep on fileno(): a put must wake it
        self._sleeping = False
        self._pipe: tuple[int, int] | None = None
        #: guards the pipe against a write racing close() (the descriptor
        #: number could be reused meanwhile); taken only to wake a sleeper
        self._pipe_lock = threading.Lock()
        self._closed = False
        #: wake() was called: the consumer's next sleeping() says not to sleep
        self._kicked = False

    def put(self, item: T) -> None:
        """Hand ``item`` to the consumer; wakes it if it sleeps. Never blocks."""
        self._items.put(item)
        if self._sleeping:
            self._ring()
        elif self._external_wake is not None and not self._signalled:
            self._signalled = True
            self._external_wake()

    def get(self, timeout: float | None = None) -> T:
        """(Consumer sleeping on the mailbox alone) the next item, waiting
        at most ``timeout`` seconds (``None``: no limit).

        :raises Empty: nothing came in time.
        """
        return self._items.get(timeout=timeout)

    def take(self, limit: int = 0) -> list[T]:
        """The items waiting now, oldest first, at most ``limit`` of them
        (0: all); never waits."""
        items = self._items
        # before taking: a put from now on calls an external wake-up again
        self._signalled = False
        taken: list[T] = []
        while not items.empty():
            taken.append(items.get_nowait())
            if len(taken) == limit:
                break
        return taken

    def __len__(self) -> int:
        return self._items.qsize()

    def empty(self) -> bool:
        """Whether no item waits (a cheap check before :meth:`take`)."""
        return self._items.empty()

    def fileno(self) -> int:
        """The descriptor that becomes readable when an item is put while
        the consumer sleeps (see :meth:`sleeping`)."""
        if self._pipe is None:
            with self._pipe_lock:
                if self._pipe is None:
                    read_fd, write_fd = os.pipe()
                    os.set_blocking(read_fd, False)
                    os.set_blocking(write_fd, False)
                    self._pipe = (read_fd, write_fd)
        return self._pipe[0]

    def sleeping(self) -> bool:
        """(Consumer, just before it waits on :meth:`fileno`) from now on a
        put wakes it. False when items are already waiting: it must not
        sleep (call :meth:`woken` all the same)."""
        if self._pipe is None:
            self.fileno()
        self._sleeping = True
        if self._kicked or not self._items.empty():
            self._sleeping = False
            return False
        return True

    def woken(self, readable: bool = True) -> None:
        """(Consumer, after its wait) puts no longer wake it; ``readable``:
        :meth:`fileno` was readable, so the wake-up bytes are read out."""
        self._sleeping = self._kicked = False
        if readable and self._pipe is not None:
            try:
                while os.read(self._pipe[0], 4096):
                    pass
            except (BlockingIOError, OSError):
                pass

    def wait(self, timeout: float | None,
             fds: Sequence[int | _HasFileno] = ()) -> list[int | _HasFileno]:
        """(Consumer) sleep until an item is put, one of ``fds`` is readable
        or ``timeout`` seconds pass, with ``select``; returns the readable
        ones among ``fds`` (at once, and none, when items are waiting)."""
        wake_fd = self.fileno()
        if not self.sleeping():
            self.woken(False)
            return []
        try:
            readable, _, _ = select.select([wake_fd, *fds], [], [], timeout)
        finally:
            self._sleeping = False
        self.woken(wake_fd in readable)
        return [fd for fd in readable if fd != wake_fd]

    def wake(self) -> None:
        """(Any thread) wake the consumer, or keep it from its next sleep,
        with no item (to have it look at a flag, say)."""
        self._kicked = True
        if self._sleeping:
            self._ring()

    def _ring(self) -> None:
        with self._pipe_lock:
            if not self._sleeping or self._closed or self._pipe is None:
                return
            self._sleeping = False
            try:
                os.write(self._pipe[1], b"!")
            except OSError:
                pass  # the pipe is full: the consumer is woken anyway

    def close(self) -> None:
        """(Consumer, once it no longer waits) close the pipe; later puts
        still queue items but wake nobody. Idempotent."""
        with self._pipe_lock:
            self._closed = True
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            for fd in pipe:
                try:
                    os.close(fd)
                except OSError:
                    pass
