"""Call/reply correlation: one future per call, completed by the reply."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.errors import InvalidMessage, TransportError

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)


class PendingCalls:
    """The calls of one cell still waiting for a reply.

    :meth:`on_reply` is the handler the core gives the driver for every call.
    """

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._lock = threading.Lock()
        self._futures: dict[str, Future[dict[str, Any]]] = {}

    def add(self, msg_id: str) -> Future[dict[str, Any]]:
        future: Future[dict[str, Any]] = Future()
        with self._lock:
            self._futures[msg_id] = future
        return future

    def discard(self, msg_id: str) -> None:
        with self._lock:
            self._futures.pop(msg_id, None)

    def __len__(self) -> int:
        return len(self._futures)

    def on_reply(self, body: bytes) -> None:
        """Complete the call a reply answers; drop anything else."""
        cell = self._cell
        try:
            env = envelope.decode(body, max_size=cell.max_message_size, key=cell.secret_key)
        except envelope.BadSignature:
            cell.stats.incr("dropped_unsigned")
            return
        except InvalidMessage:
            cell.stats.incr("dropped_malformed")
            return
        if env["kind"] != "reply":
            cell.stats.incr("dropped_malformed")
            return
        with self._lock:
            future = self._futures.pop(env["re"], None)
        if future is None:
            cell.stats.incr("late_replies")
            return
        future.set_result(env)

    def fail_all(self, why: str) -> None:
        with self._lock:
            futures, self._futures = self._futures, {}
        for future in futures.values():
            future.set_exception(TransportError(why))
