"""How other threads hand work to a connection's I/O thread: a queue and a
wake-up pipe, written to only while the I/O thread sleeps."""

from __future__ import annotations

import collections
import os
import select
from typing import Any


class Mailbox:
    """A deque of work items plus a pipe that wakes :meth:`wait`.

    :meth:`put` is called from any thread; everything else from the I/O
    thread. The ``sleeping`` flag (set just before :meth:`wait` checks the
    queue one last time) means a busy I/O thread costs callers no system call.
    """

    def __init__(self) -> None:
        self.items: collections.deque[Any] = collections.deque()
        self._sleeping = False
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)

    def put(self, item: Any) -> None:
        """Queue ``item`` and wake the I/O thread if it sleeps."""
        self.items.append(item)
        if self._sleeping and not self._closed:
            self._sleeping = False
            self.wake()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def wait(self, sock: Any, timeout: float) -> bool:
        """Sleep until work arrives, ``sock`` (if any) is readable or
        ``timeout`` passes; True when ``sock`` is readable."""
        self._sleeping = True
        if self.items:
            self._sleeping = False
            return False
        fds = [self._wake_r] if sock is None else [sock, self._wake_r]
        readable, _, _ = select.select(fds, [], [], timeout)
        self._sleeping = False
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except OSError:
                pass
        return sock is not None and sock in readable

    def close(self) -> None:
        """Wake the I/O thread one last time; later puts do not write."""
        self._closed = True
        self.wake()

    def release(self) -> None:
        """Close the pipe (after the I/O thread has ended)."""
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
