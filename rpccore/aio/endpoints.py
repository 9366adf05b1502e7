"""Async endpoint methods: what runs on the server's event loop.

The core's server opens, dispatches and answers every request on its own
threads (workers, or the driver's). What an ``async def`` method returns
(a coroutine) is handed from there to the loop as a task; what an async
generator method returns is turned into a plain generator whose every
item is awaited on the loop, so the core's streaming code (credit, window,
cancelling: :mod:`rpccore.streaming`) runs it unchanged on its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import traceback
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from rpccore.dispatcher import Failure, exception_type_name, failure

if TYPE_CHECKING:
    from rpccore.streaming import StreamRegistry

LOG = logging.getLogger(__name__)

#: seconds a stream's end waits for the async generator's ``finally`` to run
CLOSE_PATIENCE = 10.0


def task_outcome(task: asyncio.Task[Any]) -> tuple[Any, Failure | None]:
    """``(result, failure)`` of a finished endpoint task, as the dispatcher
    gives them for a plain method."""
    if task.cancelled():
        return None, failure("rpccore.Cancelled",
                             "the method was cancelled on the server before it returned")
    exc = task.exception()
    if exc is None:
        return task.result(), None
    return None, failure(exception_type_name(exc), str(exc),
                         "".join(traceback.format_exception(exc)))


async def _next_item(agen: AsyncGenerator[Any, Any]) -> Any:
    return await agen.__anext__()


class LoopSteps:
    """Runs one awaitable at a time on ``loop`` for a thread that waits for
    it, every one in the same context (the dispatching thread's: context
    variables an async generator sets stay set for its next item)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._context = contextvars.copy_context()
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False

    def run(self, make: Callable[[], Awaitable[Any]], timeout: float | None = None) -> Any:
        """(On a thread that is not the loop's) ``await make()`` on the loop.

        :raises concurrent.futures.CancelledError: :meth:`interrupt` was called.
        :raises RuntimeError: the loop is closed.
        :raises TimeoutError: not done within ``timeout`` seconds.
        """
        outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def start() -> None:
            if self._interrupted:
                outcome.cancel()
                return
            task = self._task = self.loop.create_task(_awaited(make), context=self._context)
            task.add_done_callback(lambda done: _copy(done, outcome))

        self.loop.call_soon_threadsafe(start)
        try:
            return outcome.result(timeout)
        finally:
            self._task = None

    def interrupt(self) -> None:
        """(Any thread) cancel the step running now and refuse new ones."""
        self._interrupted = True
        try:
            self.loop.call_soon_threadsafe(self._cancel_task)
        except RuntimeError:  # the loop is closed: nothing runs on it
            pass

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()


async def _awaited(make: Callable[[], Awaitable[Any]]) -> Any:
    return await make()


def _copy(task: asyncio.Task[Any], outcome: concurrent.futures.Future[Any]) -> None:
    if task.cancelled():
        outcome.cancel()
        return
    exc = task.exception()
    if exc is None:
        outcome.set_result(task.result())
    else:
        outcome.set_exception(exc)


def items_from_loop(agen: AsyncGenerator[Any, Any], loop: asyncio.AbstractEventLoop,
                    streams: StreamRegistry, msg_id: str) -> Generator[Any, None, None]:
    """A generator of ``agen``'s items, each awaited on ``loop``, for the
    core's streaming code on a server thread.

    The caller cancelling the stream (a ``control`` with ``cancel``)
    cancels an item still being awaited, so an async generator waiting for
    something stops at once. Closing this generator closes ``agen``
    (its ``finally`` runs on the loop).
    """
    steps = LoopSteps(loop)
    finished = False  # agen ran to its end or raised: nothing to close
    stream = streams.get(msg_id)  # opened by the core before it asks for an item
    if stream is not None:
        stream.on_cancel = steps.interrupt
    try:
        while stream is None or not stream.cancelled:
            try:
                item = steps.run(lambda: _next_item(agen))
            except StopAsyncIteration:
                finished = True
                return
            except concurrent.futures.CancelledError:
                return  # the caller cancelled while an item was awaited
            except BaseException:
                finished = True
                raise
            yield item  # GeneratorExit here: the core closes the stream early
    finally:
        if not finished:
            _close_on_loop(agen, loop)


def _close_on_loop(agen: AsyncGenerator[Any, Any], loop: asyncio.AbstractEventLoop) -> None:
    try:
        LoopSteps(loop).run(agen.aclose, timeout=CLOSE_PATIENCE)
    except RuntimeError:  # closed while running, or the loop is gone
        LOG.warning("an async generator endpoint could not be closed on its loop")
    except TimeoutError:
        LOG.warning("an async generator endpoint took over %g s to close", CLOSE_PATIENCE)
    except Exception:
        LOG.exception("closing an async generator endpoint failed")
