"""Sending a request from an event loop and awaiting what comes back.

The envelope is built by the threaded core (``RPC._outgoing``, with the
interceptors' ``before_send``) on the loop, in the calling task's context.
A driver that can take it without blocking does so on the loop
(:meth:`rpccore.driver.Driver.send_nowait`: zmq queues it for its I/O
thread); otherwise, or when it declines,
the driver's ``send`` runs on :class:`SendThreads`
(:func:`rpccore.waiting.send_call`, as for threaded calls), telling the
driver that the caller waits elsewhere (:data:`rpccore.driver.caller_elsewhere`:
a driver that would read the replies on that thread returns at once
instead, and reports a later failure to the waiter); replies come
through the cell's one reply handler (``cell.pending_calls``) into an
awaitable waiter; :func:`intercepted` ends the interception. The loop only
builds, registers, hands on what cannot block and waits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from rpccore.aio.waiters import AsyncReplyQueue, AsyncReplySlot
from rpccore.driver import caller_elsewhere
from rpccore.errors import RPCError, Timeout, Undeliverable
from rpccore.replies import ReplySlot
from rpccore.waiting import (
    fail_waiter,
    gathered,
    reply_result,
    send_for_waiter,
    timeout_text,
)

if TYPE_CHECKING:
    from rpccore.aio.inbox import LoopInbox
    from rpccore.aio.threads import SendThreads
    from rpccore.cell import Cell
    from rpccore.destination import Destination
    from rpccore.interceptors import Sending
    from rpccore.replies import ReplyQueue

LOG = logging.getLogger(__name__)
T = TypeVar("T")


def start_request(threads: SendThreads, cell: Cell, dest: Destination, body: bytes,
                  end: float, waiter: ReplySlot | ReplyQueue) -> None:
    """(On the loop) hand a request to the cell's driver if it can take it
    without blocking (:meth:`~rpccore.driver.Driver.send_nowait`), else have
    a send thread send it (:func:`send_request`). What fails goes to
    ``waiter``, counted as for a send that raised."""
    if cell.loaded:  # loading a driver may connect: only ever on a thread
        try:
            sent = cell.driver().send_nowait(
                dest, body, on_reply=cell.pending_calls.on_reply, deadline=end,
                on_failure=functools.partial(_failed_later, cell, waiter))
        except Exception as exc:  # counted as a send that raised
            cell.stats.incr("failed")
            fail_waiter(cell, dest, waiter, exc)
            return
        if sent:
            cell.stats.incr("sent")
            return
    threads.submit(send_request, cell, dest, body, end, waiter)


def send_request(cell: Cell, dest: Destination, body: bytes, end: float,
                 waiter: ReplySlot | ReplyQueue) -> None:
    """(On a send thread) hand a request to the driver; what ``send`` raises
    goes to ``waiter``. A call whose caller gave up before a thread was free
    for it (cancelled, timed out) is never sent."""
    if getattr(waiter, "done", False):  # a ReplySlot's; a stream's queue has none
        return
    if time.monotonic() >= end:
        return  # its caller is timing out now: the backend would only expire it
    elsewhere = caller_elsewhere.set(functools.partial(_failed_later, cell, waiter))
    try:
        send_for_waiter(cell, cell.driver(), dest, body, cell.pending_calls.on_reply, end,
                        waiter)
    finally:
        caller_elsewhere.reset(elsewhere)


def _failed_later(cell: Cell, waiter: ReplySlot | ReplyQueue, error: RPCError) -> None:
    """(A driver's thread) what failed a request after its ``send``
    returned: counted and handed to the waiter, as if ``send`` had raised."""
    cell.stats.incr("failed")
    waiter.fail(error)


async def await_reply(threads: SendThreads, inbox: LoopInbox, cell: Cell, dest: Destination,
                      msg_id: str, body: bytes, timeout: float,
                      heartbeat: float | None = None) -> dict[str, Any]:
    """Send the call ``body`` (id ``msg_id``) and return its final reply
    envelope (which may carry a ``failure``).

    Cancelling the awaiting task abandons the call: its reply, should it
    come, is dropped and counted (``late_replies``).

    :raises Timeout: no reply within ``timeout``, or (``heartbeat``) nothing
        at all from the server for ``heartbeat`` seconds.
    :raises: what the driver's ``send`` raises.
    """
    end = time.monotonic() + timeout
    pending = cell.pending_calls
    slot: AsyncReplySlot = pending.add(msg_id, AsyncReplySlot(inbox))
    try:
        slot.heard = time.monotonic()
        start_request(threads, cell, dest, body, end, slot)
        slot.watch(end, heartbeat)
        await slot.future
    except asyncio.CancelledError:
        cell.stats.incr("cancelled")
        raise
    finally:
        pending.discard(msg_id)
        slot.done = True  # a send not started yet is skipped; late replies wake nobody
        if slot.timer is not None:
            slot.timer.cancel()
    if slot.error is not None:
        raise slot.error
    if slot.reply is None:
        cell.stats.incr("timed_out")
        raise Timeout(timeout_text(cell, dest, timeout, slot, heartbeat, end))
    return slot.reply


async def call_result(threads: SendThreads, inbox: LoopInbox, cell: Cell, dest: Destination,
                      msg_id: str, body: bytes, timeout: float,
                      heartbeat: float | None = None) -> Any:
    """:func:`await_reply`, then the endpoint's return value.

    :raises RemoteError: the reply carries a failure (counted).
    """
    return reply_result(cell, await await_reply(threads, inbox, cell, dest, msg_id, body,
                                                timeout, heartbeat))


async def intercepted(sending: Sending | None, request: Awaitable[T]) -> T:
    """Await ``request``, then end its interception (the interceptors'
    ``after_send``) with what it raised, if anything, as the threaded API's
    ``Sending.run`` does; a cancelled request ends with its CancelledError."""
    if sending is None:
        return await request
    try:
        result = await request
    except BaseException as exc:
        sending.finish(exc)
        raise
    sending.finish()
    return result


async def gather_replies(threads: SendThreads, inbox: LoopInbox, cell: Cell,
                         dest: Destination, msg_id: str, body: bytes,
                         timeout: float) -> list[tuple[str, Any]]:
    """Send a fanout call and collect ``(host, result)`` of every server
    that answers within ``timeout`` (it always waits that long)."""
    end = time.monotonic() + timeout
    queue = cell.pending_calls.add(msg_id, AsyncReplyQueue(inbox))
    found: list[tuple[str, Any]] = []
    try:
        start_request(threads, cell, dest, body, end, queue)
        while (left := end - time.monotonic()) > 0:
            try:
                reply = await queue.next(left)
            except Undeliverable:  # nobody consumes the fanout: nobody answers
                break
            if reply is None:
                break
            if reply.get("part") is None:
                found.append(gathered(reply))
    finally:
        cell.pending_calls.discard(msg_id)
    return found
