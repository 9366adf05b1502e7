"""Caller side of streamed replies on an event loop: ``async for``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from rpccore.aio.waiters import AsyncReplyQueue
from rpccore.errors import RPCError
from rpccore.stream_reader import MORE, StreamReading

if TYPE_CHECKING:
    from rpccore.aio.threads import SendThreads
    from rpccore.cell import Cell
    from rpccore.destination import Destination


class AsyncStreamReader(StreamReading, AsyncIterator[Any]):
    """The items of a streamed reply, in order (what ``rpccore.aio.RPC.stream``
    returns): ``async for item in rpc.stream(...)``.

    Each item is awaited at most ``timeout`` seconds. Credit goes back to
    the server as items are consumed, as for :class:`rpccore.stream_reader.StreamReader`,
    from send threads (never from the loop). Cancelling the task that
    iterates, :meth:`aclose`, leaving an ``async with`` block or garbage
    collection tells the server to stop its generator.

    :raises Timeout: no item (nor the end) within ``timeout``.
    :raises RemoteError: the generator raised, after the items before it.
    """

    def __init__(self, cell: Cell, msg_id: str, queue: AsyncReplyQueue, timeout: float,
                 window: int, new_id: Callable[[], str], what: str,
                 threads: SendThreads) -> None:
        super().__init__(cell, msg_id, queue, timeout, window, new_id, what)
        self._replies = queue
        self._threads = threads

    def __aiter__(self) -> AsyncStreamReader:
        return self

    async def __anext__(self) -> Any:
        if self._done:
            raise StopAsyncIteration
        try:
            while True:
                try:
                    env = await self._replies.next(self._timeout)
                except RPCError as exc:
                    self._failed(exc)
                    raise
                if env is None:
                    raise self._timed_out()
                try:
                    item = self._take(env)
                except StopIteration:
                    raise StopAsyncIteration from None
                if item is not MORE:
                    return item
        except asyncio.CancelledError:
            self.close()
            raise

    def _send_control(self, server: Destination, body: bytes, what: dict[str, Any]) -> None:
        # Sending may block (a broker being restarted): never on the loop.
        try:
            self._threads.submit(StreamReading._send_control, self, server, body, what)
        except RPCError:  # the RPC object is closed: so is the cell
            pass

    async def aclose(self) -> None:
        """:meth:`close`, awaitable."""
        self.close()

    async def __aenter__(self) -> AsyncStreamReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
