"""How other threads hand work to an event loop: in batches, one wake-up each.

Replies reach the process on drivers' threads and must be handed to the
loop that awaits them. ``loop.call_soon_threadsafe`` writes to the loop's
wake-up pipe every time it is called: a system call per reply, and as many
loop iterations. A :class:`LoopInbox` queues what arrives and wakes the
loop only when no wake-up is on its way already, so under load one wake-up
carries every reply that came meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

LOG = logging.getLogger(__name__)

Job = tuple[Callable[[Any], None], Any]


class LoopInbox:
    """Runs ``fn(arg)`` on ``loop`` for every :meth:`put` from any thread,
    in the order put.

    :ivar loop: the event loop the callbacks run on
    """

    __slots__ = ("loop", "_jobs", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._jobs: collections.deque[Job] = collections.deque()
        #: a drain is scheduled and has not started yet
        self._armed = False

    def put(self, fn: Callable[[Any], None], arg: Any) -> bool:
        """Have the loop call ``fn(arg)`` soon. Thread-safe, never blocks.

        :returns: False when the loop is closed (nothing will run).
        """
        if self.loop.is_closed():
            return False
        self._jobs.append((fn, arg))
        # Appended before the flag is read: a drain that has started (and
        # reset the flag) takes this job, or a new one is scheduled here.
        if not self._armed:
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # closed in the meantime
                return False
        return True

    def _drain(self) -> None:
        self._armed = False
        jobs = self._jobs
        # Only what is here now: what comes meanwhile has a drain of its own
        # scheduled, and the loop's other callbacks run in between.
        for _ in range(len(jobs)):
            fn, arg = jobs.popleft()
            try:
                fn(arg)
            except Exception:  # one bad callback must not lose the others
                LOG.exception("a callback handed to the event loop failed")


def settle(job: tuple[asyncio.Future[Any], Any, BaseException | None]) -> None:
    """(On the loop) complete a future with a result or an exception, unless
    its awaiting task gave up on it already."""
    future, result, error = job
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def wake(future: asyncio.Future[Any]) -> None:
    """(On the loop) complete a future that carries no value."""
    if not future.done():
        future.set_result(None)
