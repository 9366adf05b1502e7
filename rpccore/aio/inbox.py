"""How other threads hand work to an event loop: in batches, one wake-up each.

Replies reach the process on drivers' threads and must be handed to the
loop that awaits them. ``loop.call_soon_threadsafe`` writes to the loop's
wake-up pipe every time it is called: a system call per reply, and as many
loop iterations. A :class:`LoopInbox` queues what arrives (in a driver
toolkit :class:`~rpccore.driverkit.Mailbox`) and wakes the loop only when no
wake-up is on its way already, so under load one wake-up carries every reply
that came meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from rpccore.driverkit import Mailbox

LOG = logging.getLogger(__name__)

Job = tuple[Callable[[Any], None], Any]


class LoopInbox:
    """Runs ``fn(arg)`` on ``loop`` for every :meth:`put` from any thread,
    in the order put.

    A :class:`rpccore.driverkit.Mailbox` whose wake-up is the loop's own:
    the first put after the loop last took its jobs schedules a drain
    (``call_soon_threadsafe``), the puts after it ride along.

    :ivar loop: the event loop the callbacks run on
    """

    __slots__ = ("loop", "_jobs")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._jobs: Mailbox[Job] = Mailbox(wake=self._schedule)

    def put(self, fn: Callable[[Any], None], arg: Any) -> bool:
        """Have the loop call ``fn(arg)`` soon. Thread-safe, never blocks.

        :returns: False when the loop is closed (nothing will run).
        """
        if self.loop.is_closed():
            return False
        try:
            self._jobs.put((fn, arg))
        except RuntimeError:  # closed in the meantime
            return False
        return True

    def _schedule(self) -> None:
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        jobs = self._jobs
        # Only what is here now: what comes meanwhile has a drain of its own
        # scheduled, and the loop's other callbacks run in between.
        for fn, arg in jobs.take(len(jobs) or 1):
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
