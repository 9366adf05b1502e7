"""The driver's asyncio event loop, run on a thread of its own, and the
outbox through which rpccore's threads hand it what to publish.

nats-py is asyncio: every connection operation must run on the loop that
owns the connection. rpccore's callers, servers and workers are plain
threads, so each driver runs one loop thread; other threads reach it only
through :meth:`EventLoopThread.run` (wait for a coroutine's result, never
past a deadline) and :class:`Outbox` (queue a publish and return at once).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from rpccore.driverkit import Completion, Mailbox

LOG = logging.getLogger(__name__)

T = TypeVar("T")


class LoopTimeout(Exception):
    """:meth:`EventLoopThread.run` gave up waiting (not raised by the coroutine)."""


class EventLoopThread:
    """An asyncio loop running forever on a daemon thread."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                if pending:
                    self.loop.run_until_complete(
                        asyncio.gather(*pending, return_exceptions=True))
            except Exception:  # a task that will not die must not hide the close
                LOG.debug("cancelling the loop's tasks failed", exc_info=True)
            self.loop.close()

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; its result comes in the future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop and wait at most ``timeout`` seconds.

        Waits on the ``concurrent.futures.Future`` of
        ``run_coroutine_threadsafe`` rather than a driverkit ``Completion``:
        cancelling that future cancels the coroutine on the loop.

        :raises LoopTimeout: not done in time (the coroutine is cancelled).
        """
        if self.in_loop():
            raise RuntimeError("EventLoopThread.run called on the loop's own thread")
        future = self.submit(coro)
        try:
            return future.result(max(timeout, 0.0))
        except concurrent.futures.TimeoutError:
            if not future.done():
                future.cancel()
                raise LoopTimeout from None
            return future.result()

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop, from any thread."""
        if self.in_loop():
            self.loop.call_soon(fn, *args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (tasks still running are cancelled) and join it."""
        if self.loop.is_closed():
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:  # closed meanwhile
            return
        if not self.in_loop():
            self._thread.join(timeout)


#: What an outbox item does: publish ``(subject, payload, reply)``; the same
#: and then complete ``handed`` once nats-py has it (or refused it), for a
#: sender that waits for that much (``(subject, payload, reply, handed)``);
#: or run a coroutine function of no arguments (acknowledgements with
#: bookkeeping).
OutboxItem = (tuple[str, bytes, str] | tuple[str, bytes, str, Completion[None]]
              | Callable[[], Awaitable[None]])


class Outbox:
    """Publishes queued by any thread, sent in order by one task of the loop.

    The items wait in a :class:`rpccore.driverkit.Mailbox` whose wake-up is
    the loop's own (``call_soon_threadsafe``): it is called once per burst
    of puts, until the task takes them, so a busy sender costs one system
    call per burst, not per message. The order of :meth:`put` calls is the
    order on the wire, which keeps a request's replies in order (rpccore's
    driver contract).
    """

    def __init__(self, loop_thread: EventLoopThread,
                 publish: Callable[[str, bytes, str], Awaitable[None]],
                 on_error: Callable[[OutboxItem, BaseException], None]) -> None:
        self._loop_thread = loop_thread
        self._publish = publish
        self._on_error = on_error
        self._wake = asyncio.Event()
        self._mailbox: Mailbox[OutboxItem] = Mailbox(
            wake=lambda: loop_thread.call_soon(self._wake.set))
        #: items taken from the mailbox and not yet handed to nats-py
        self._sending = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the sending task (on the loop thread)."""
        self._task = self._loop_thread.loop.create_task(self._run())

    def put(self, item: OutboxItem) -> None:
        """Queue ``item`` (any thread); never blocks."""
        self._mailbox.put(item)

    def __len__(self) -> int:
        return len(self._mailbox) + self._sending

    async def _run(self) -> None:
        mailbox, wake, publish = self._mailbox, self._wake, self._publish
        while True:
            await wake.wait()
            # cleared before taking: a put() after take() wakes us again
            wake.clear()
            items = mailbox.take()
            self._sending = len(items)
            for item in items:
                try:
                    if type(item) is tuple:
                        await publish(item[0], item[1], item[2])
                    else:
                        await item()  # type: ignore[operator]
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._on_error(item, exc)
                if type(item) is tuple and len(item) == 4:
                    item[3].set_result(None)
                self._sending -= 1

    async def flush(self) -> None:
        """Wait until everything queued so far was handed to nats-py."""
        while len(self):
            await asyncio.sleep(0.001)
