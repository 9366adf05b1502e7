"""Call/reply correlation: one future per call, completed by the reply."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.errors import InvalidMessage, TransportError

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)


class ReplySlot:
    """Where one call's reply lands: a future reduced to what a call needs.

    A lock held from creation and released by the reply is the cheapest
    wake-up Python offers (no condition variable, no polling).
    """

    __slots__ = ("_ready", "reply", "error")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self.reply: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def set_reply(self, reply: dict[str, Any]) -> None:
        """Complete the call; called at most once (the slot leaves the table first)."""
        self.reply = reply
        self._ready.release()

    def set_error(self, error: BaseException) -> None:
        self.error = error
        self._ready.release()

    def wait(self, timeout: float) -> bool:
        """True once completed, False after ``timeout`` seconds."""
        return self._ready.acquire(timeout=max(timeout, 0.0))


class PendingCalls:
    """The calls of one cell still waiting for a reply.

    :meth:`on_reply` is the handler the core gives the driver for every call.
    """

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._lock = threading.Lock()
        self._futures: dict[str, ReplySlot] = {}

    def add(self, msg_id: str) -> ReplySlot:
        slot = ReplySlot()
        with self._lock:
            self._futures[msg_id] = slot
        return slot

    def discard(self, msg_id: str) -> None:
        with self._lock:
            self._futures.pop(msg_id, None)

    def __len__(self) -> int:
        return len(self._futures)

    def decode_reply(self, body: bytes) -> dict[str, Any] | None:
        """The reply envelope in ``body``; ``None`` (counted) when it is
        unsigned, malformed or not a reply."""
        cell = self._cell
        try:
            env = envelope.decode(body, max_size=cell.max_message_size, key=cell.secret_key)
        except envelope.BadSignature:
            cell.stats.incr("dropped_unsigned")
            return None
        except InvalidMessage:
            cell.stats.incr("dropped_malformed")
            return None
        if env["kind"] != "reply":
            cell.stats.incr("dropped_malformed")
            return None
        return env

    def on_reply(self, body: bytes) -> None:
        """Complete the call a reply answers; drop anything else."""
        env = self.decode_reply(body)
        if env is None:
            return
        cell = self._cell
        with self._lock:
            future = self._futures.pop(env["re"], None)
        if future is None:
            cell.stats.incr("late_replies")
            return
        future.set_reply(env)

    def fail_all(self, why: str) -> None:
        with self._lock:
            futures, self._futures = self._futures, {}
        for future in futures.values():
            future.set_error(TransportError(why))
