"""One piece of work that one thread finishes and others wait for.

A driver meets this everywhere: a caller waits for a publisher confirm, a
receipt or a reply that the driver's I/O thread will see; a thread asks the
I/O thread to run something and waits for the result. :class:`Completion`
is the one primitive for all of them: a result or an error, set once, and a
wait with a timeout or a deadline.

Example, a confirmed send handed to an I/O thread::

    done: Completion[None] = Completion()
    self.io.submit(lambda: self._publish(message, on_confirm=done))
    if not done.wait_until(deadline):
        done.set_error(TransportError("no confirm in time"))  # a late confirm is ignored
    done.result(0)        # returns, or raises what the I/O thread set

Why not :class:`concurrent.futures.Future` or :class:`threading.Event`: a
lock held from creation and released by the finishing thread is the
cheapest wake-up Python offers (no condition variable, no callbacks), and a
call path creates one per request.
"""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

__all__ = ["Completion"]

T = TypeVar("T")


class Completion(Generic[T]):
    """A result or an error, set once by any thread, waited for by any
    number of threads, any number of times.

    The first :meth:`set_result`, :meth:`set_error` or :meth:`abandon`
    wins; later ones return False and change nothing. So a waiter that gives
    up can settle it first, and the worker's late result is then ignored.

    :ivar value: the result (``None`` until completed, or when completed
        with an error); read it once :meth:`wait` returned True
    :ivar error: the error it was completed with, if any
    """

    __slots__ = ("_gate", "_unclaimed", "value", "error", "_done")

    def __init__(self) -> None:
        gate = threading.Lock()
        gate.acquire()
        #: held until completed; a waiter that gets it releases it at once,
        #: so that every later wait returns at once too
        self._gate = gate
        #: popped by whoever completes it (list.pop is atomic)
        self._unclaimed: list[bool] = [True]
        self.value: T | None = None
        self.error: BaseException | None = None
        #: set once the outcome is stored (a claim alone is not enough)
        self._done = False

    def set_result(self, value: T) -> bool:
        """Complete with ``value``; False (and nothing changes) when already
        completed."""
        try:
            self._unclaimed.pop()
        except IndexError:
            return False
        self.value = value
        self._done = True
        self._gate.release()
        return True

    def set_error(self, error: BaseException) -> bool:
        """Complete with ``error`` (raised by :meth:`result`); False (and
        nothing changes) when already completed."""
        try:
            self._unclaimed.pop()
        except IndexError:
            return False
        self.error = error
        self._done = True
        self._gate.release()
        return True

    def abandon(self) -> bool:
        """Complete with neither a result nor an error: whoever waited for
        it gave up, and the outcome that comes later is to be ignored (a
        confirm for a caller that timed out, say). False (and nothing
        changes) when already completed."""
        try:
            self._unclaimed.pop()
        except IndexError:
            return False
        self._done = True
        self._gate.release()
        return True

    @property
    def done(self) -> bool:
        """Whether it was completed (a result or an error was set)."""
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until completed, at most ``timeout`` seconds (``None``: no
        limit); True once completed, False when the time ran out. Never
        raises the work's error (see :meth:`result`)."""
        gate = self._gate
        if gate.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            gate.release()
            return True
        return False

    def wait_until(self, deadline: float | None) -> bool:
        """:meth:`wait` until the ``time.monotonic()`` value ``deadline``
        (``None``: no limit)."""
        if deadline is None:
            return self.wait()
        return self.wait(deadline - time.monotonic())

    def result(self, timeout: float | None = None) -> T:
        """The result, once completed (waiting at most ``timeout`` seconds).

        :raises TimeoutError: not completed in time.
        :raises: the error it was completed with.
        """
        if not self.wait(timeout):
            raise TimeoutError("not completed in time")
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]
