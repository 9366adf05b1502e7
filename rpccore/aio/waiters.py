"""Reply waiters that an event loop awaits.

The cell's one reply handler (:meth:`rpccore.replies.PendingCalls.on_reply`)
runs on drivers' threads and hands each reply to the waiter registered for
its request. These are the core's waiters (same bookkeeping, same
``deliver``/``fail``) that also wake a task on an event loop, through a
:class:`~rpccore.aio.inbox.LoopInbox`; nothing here runs driver I/O.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rpccore.aio.inbox import LoopInbox, wake
from rpccore.replies import ReplyQueue, ReplySlot


class AsyncReplySlot(ReplySlot):
    """One call's reply, awaited on a loop: :attr:`future` completes (with
    no value) once the reply or a failure is in the slot, or when the
    caller's timer gives up.

    :ivar future: completed on the loop; the outcome is in ``reply`` or
        ``error`` (neither: the call timed out)
    :ivar timer: the loop's timer that checks the deadline and heartbeat
    """

    __slots__ = ("future", "timer", "_inbox")

    def __init__(self, inbox: LoopInbox) -> None:
        super().__init__()
        self._inbox = inbox
        self.future: asyncio.Future[None] = inbox.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None

    def deliver(self, env: dict[str, Any]) -> bool:
        first = not self.done
        complete = super().deliver(env)
        if complete and first:
            self._inbox.put(wake, self.future)
        return complete

    def fail(self, error: BaseException) -> None:
        if not self.done:
            super().fail(error)
            self._inbox.put(wake, self.future)

    def watch(self, end: float, heartbeat: float | None) -> None:
        """(On the loop) give up at ``end`` (``time.monotonic()``), or once
        nothing was heard from the server for ``heartbeat`` seconds."""
        now = time.monotonic()
        if now >= end or (heartbeat is not None and now - self.heard >= heartbeat):
            wake(self.future)
            return
        due = end if heartbeat is None else min(end, self.heard + heartbeat)
        self.timer = self._inbox.loop.call_later(due - now, self.watch, end, heartbeat)


class AsyncReplyQueue(ReplyQueue):
    """Every reply envelope of one stream or gather, read on a loop with
    :meth:`next` (the thread-side :meth:`get` works as well)."""

    __slots__ = ("_inbox", "_waiter")

    def __init__(self, inbox: LoopInbox) -> None:
        super().__init__()
        self._inbox = inbox
        self._waiter: asyncio.Future[None] | None = None

    def deliver(self, env: dict[str, Any]) -> bool:
        super().deliver(env)
        self._inbox.put(self._wake_reader, None)
        return False

    def fail(self, error: BaseException) -> None:
        super().fail(error)
        self._inbox.put(self._wake_reader, None)

    def _wake_reader(self, _: None) -> None:
        waiter = self._waiter
        if waiter is not None:
            wake(waiter)

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The next envelope, ``None`` after ``timeout`` seconds.

        :raises TransportError: the cell failed (closed) meanwhile.
        """
        found = self.get_nowait()
        if found is not None:
            return found
        loop = self._inbox.loop
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            waiter = self._waiter = loop.create_future()
            timer = loop.call_later(left, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
            found = self.get_nowait()
            if found is not None:
                return found
        return None
