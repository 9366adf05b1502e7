"""Handing requests to a driver and waiting for what comes back."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rpccore.errors import RemoteError, RPCError, Timeout, TransportError, Undeliverable
from rpccore.replies import ReplyQueue, ReplySlot

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.destination import Destination
    from rpccore.driver import Driver, ReplyHandler

LOG = logging.getLogger(__name__)


def send_call(cell: Cell, driver: Driver, dest: Destination, body: bytes,
               on_reply: ReplyHandler, end: float) -> None:
    """Hand a call to the driver, counting it as sent or failed."""
    try:
        driver.send(dest, body, on_reply=on_reply, deadline=end)
    except RPCError:
        cell.stats.incr("failed")
        raise
    cell.stats.incr("sent")


def send_cast(cell: Cell, dest: Destination, body: bytes, confirm: bool = False) -> None:
    """Hand a cast to the cell's driver, counting it as sent or failed."""
    try:
        cell.driver().send(dest, body, confirm=confirm,
                           deadline=time.monotonic() + cell.rpc_response_timeout)
    except RPCError:
        cell.stats.incr("failed")
        raise
    cell.stats.incr("sent")


def send_watched(cell: Cell, driver: Driver, dest: Destination, body: bytes,
                  on_reply: ReplyHandler, end: float, waiter: ReplySlot | ReplyQueue) -> None:
    """Hand a request that the caller must watch while it runs (a heartbeat
    call, a stream) to the driver from a thread of its own, so the caller's
    thread is free at once: to notice a silent server, to read items and
    grant credit, whatever the driver's ``send`` waits for (a driver may
    read a call's replies in ``send``: see :meth:`rpccore.driver.Driver.send`).
    What ``send`` raises reaches the waiter."""
    threading.Thread(target=send_for_waiter, args=(cell, driver, dest, body, on_reply, end,
                                                   waiter),
                     daemon=True, name="rpccore-send").start()


def send_for_waiter(cell: Cell, driver: Driver, dest: Destination, body: bytes,
                    on_reply: ReplyHandler, end: float,
                    waiter: ReplySlot | ReplyQueue) -> None:
    """:func:`send_call` for a caller that waits on ``waiter`` on another
    thread (or an event loop): what ``send`` raises goes to the waiter, a
    driver's bug as a :class:`TransportError`, and a reply slot hears the
    send (a server's silence counts from when it could hear us, not from
    before a send that first waited for a connection)."""
    try:
        send_call(cell, driver, dest, body, on_reply, end)
        if isinstance(waiter, ReplySlot) and not waiter.done:
            waiter.heard = max(waiter.heard, time.monotonic())
    except Exception as exc:
        fail_waiter(cell, dest, waiter, exc)


def fail_waiter(cell: Cell, dest: Destination, waiter: ReplySlot | ReplyQueue,
                exc: Exception) -> None:
    """(In an ``except`` block) what sending a request raised, to the
    caller waiting on ``waiter``: an :class:`RPCError` as it is, anything
    else (a driver bug the caller must still hear of) logged and as a
    :class:`TransportError`."""
    if not isinstance(exc, RPCError):
        LOG.exception("cell %s: sending a request failed", cell.name)
        exc = TransportError(f"sending to {dest} failed: {exc}")
    waiter.fail(exc)


def wait_with_heartbeat(slot: ReplySlot, end: float, heartbeat: float) -> bool:
    """Wait for the reply until ``end``, or until nothing (no keepalive
    either) was heard for ``heartbeat`` seconds."""
    slot.heard = time.monotonic()
    while True:
        now = time.monotonic()
        if slot.wait(min(end, slot.heard + heartbeat) - now):
            return True
        now = time.monotonic()
        if now >= end or now - slot.heard >= heartbeat:
            return False


def timeout_text(cell: Cell, dest: Destination, timeout: float, slot: ReplySlot,
                  heartbeat: float | None, end: float) -> str:
    """What a caller needs to know of a call that timed out: where (the
    destination, cell and driver), how long it waited, and what was heard
    meanwhile: keepalives, or only the driver's receipt, or nothing."""
    where = f"{dest} in cell {cell.name} ({cell.driver_name} driver)"
    if slot.keepalives:
        heard = (f"{slot.keepalives} keepalives, the last "
                 f"{time.monotonic() - slot.heard:.1f} s ago")
    elif heartbeat is None and cell.loaded and cell.driver().detects_undeliverable:
        # send returned (it raises Undeliverable when nobody consumes): a receipt
        heard = (f"nothing from the server, though the request was delivered (the "
                 f"{cell.driver_name} driver reports destinations nobody consumes, and did "
                 f"not): a server took it and did not answer in time")
    else:
        heard = "nothing from the server"
    if heartbeat is not None and time.monotonic() < end:
        return (f"the server of {where} went silent: no reply or keepalive for "
                f"{heartbeat:g} s (heartbeat); heard {heard}")
    return f"no reply from {where} within {timeout:g} s; heard {heard}"


def await_reply(cell: Cell, dest: Destination, msg_id: str, body: bytes, timeout: float,
                heartbeat: float | None = None) -> dict[str, Any]:
    """Send the call ``body`` (id ``msg_id``) and return its final reply
    envelope (which may carry a ``failure``).

    :raises Timeout: no reply within ``timeout``, or (``heartbeat``) nothing
        at all from the server for ``heartbeat`` seconds.
    :raises: what the driver's ``send`` raises.
    """
    end = time.monotonic() + timeout
    driver = cell.driver()
    pending = cell.pending_calls
    slot: ReplySlot = pending.add(msg_id)
    try:
        if heartbeat is None:
            send_call(cell, driver, dest, body, pending.on_reply, end)
            answered = slot.wait(end - time.monotonic())
        else:
            send_watched(cell, driver, dest, body, pending.on_reply, end, slot)
            answered = wait_with_heartbeat(slot, end, heartbeat)
    finally:
        pending.discard(msg_id)
    if not answered:
        cell.stats.incr("timed_out")
        raise Timeout(timeout_text(cell, dest, timeout, slot, heartbeat, end))
    if slot.error is not None:
        raise slot.error
    assert slot.reply is not None
    return slot.reply


def call_result(cell: Cell, dest: Destination, msg_id: str, body: bytes, timeout: float,
                heartbeat: float | None = None) -> Any:
    """:func:`await_reply`, then the endpoint's return value.

    :raises RemoteError: the reply carries a failure (counted).
    :raises: what :func:`await_reply` raises.
    """
    return reply_result(cell, await_reply(cell, dest, msg_id, body, timeout, heartbeat))


def reply_result(cell: Cell, reply: dict[str, Any]) -> Any:
    """The endpoint's return value in a call's final reply envelope
    (for threaded and :mod:`rpccore.aio` callers alike).

    :raises RemoteError: the reply carries a failure (counted).
    """
    fail = reply.get("failure")
    if fail is not None:
        cell.stats.incr("remote_errors")
        raise RemoteError(fail["type"], fail["message"], fail.get("traceback") or "")
    return reply.get("result")


def gathered(reply: dict[str, Any]) -> tuple[str, Any]:
    """``(host, result)`` of one server's final reply to a gather, ``result``
    being the value or a :class:`RemoteError`."""
    fail = reply.get("failure")
    result: Any = reply.get("result") if fail is None else RemoteError(
        fail["type"], fail["message"], fail.get("traceback") or "")
    return str(reply.get("host")), result


def gather_replies(cell: Cell, dest: Destination, msg_id: str, body: bytes,
                   timeout: float) -> list[tuple[str, Any]]:
    """Send a gather (a call to a fanout destination) and collect the final
    replies that come within ``timeout`` seconds: ``(host, result)`` pairs,
    ``result`` being the value or a :class:`RemoteError`. Nobody consuming
    the topic is an empty list."""
    end = time.monotonic() + timeout
    queue = cell.pending_calls.add(msg_id, ReplyQueue())
    found: list[tuple[str, Any]] = []
    try:
        try:
            send_call(cell, cell.driver(), dest, body, cell.pending_calls.on_reply, end)
        except Undeliverable:
            return found
        while (left := end - time.monotonic()) > 0:
            reply = queue.get(left)
            if reply is None:
                break
            if reply.get("part") is None:
                found.append(gathered(reply))
    finally:
        cell.pending_calls.discard(msg_id)
    return found
