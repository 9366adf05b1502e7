"""Call/reply correlation: the cell's one reply handler and what waits on it.

Every reply of every call of a cell reaches :meth:`PendingCalls.on_reply`
(see :mod:`rpccore.driver`). A request may be answered many times
(keepalives, stream items, then a final reply, or one final reply from each
server of a fanout), so each waiting request has a *waiter* that takes the
reply envelopes of its id:

- :class:`ReplySlot`: one call; keepalives only move its ``heard`` time;
- :class:`ReplyQueue`: a stream or a gather; every envelope is queued for
  the reading thread.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
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

    :ivar heard: ``time.monotonic()`` of the last thing heard from the server
        (a keepalive); set by the caller when it sends
    :ivar keepalives: how many keepalives arrived
    """

    __slots__ = ("_ready", "reply", "error", "heard", "keepalives", "done")

    def __init__(self) -> None:
        self._ready = threading.Lock()
        self._ready.acquire()
        self.reply: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.heard = 0.0
        self.keepalives = 0
        self.done = False

    def deliver(self, env: dict[str, Any]) -> bool:
        """Take a reply envelope; True once the call is complete."""
        if env.get("part") is not None:  # a keepalive (or an item nobody asked for)
            self.heard = time.monotonic()
            self.keepalives += 1
            return False
        if not self.done:
            self.done = True
            self.reply = env
            self._ready.release()
        return True

    def fail(self, error: BaseException) -> None:
        if not self.done:
            self.done = True
            self.error = error
            self._ready.release()

    def wait(self, timeout: float) -> bool:
        """True once completed, False after ``timeout`` seconds."""
        return self._ready.acquire(timeout=max(timeout, 0.0))


class ReplyQueue:
    """Every reply envelope of one request, in arrival order (streams and
    gathers). A failure of the cell is queued as an exception."""

    __slots__ = ("_items", "_cond", "heard")

    def __init__(self) -> None:
        self._items: collections.deque[dict[str, Any] | BaseException] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self.heard = 0.0

    def deliver(self, env: dict[str, Any]) -> bool:
        with self._cond:
            self._items.append(env)
            self._cond.notify()
        return False  # the reader discards the queue itself

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self._items.append(error)
            self._cond.notify()

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next envelope, ``None`` after ``timeout`` seconds.

        :raises TransportError: the cell failed (closed) meanwhile.
        """
        end = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                left = end - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    if not self._items:
                        return None
            item = self._items.popleft()
        self.heard = time.monotonic()
        if isinstance(item, BaseException):
            raise item
        return item

    def get_nowait(self) -> dict[str, Any] | None:
        """The next envelope if one has arrived, else ``None``, never
        waiting (for readers on an event loop: :mod:`rpccore.aio`).

        :raises TransportError: the cell failed (closed) meanwhile.
        """
        with self._cond:
            if not self._items:
                return None
            item = self._items.popleft()
        self.heard = time.monotonic()
        if isinstance(item, BaseException):
            raise item
        return item


Waiter = ReplySlot | ReplyQueue


class PendingCalls:
    """The requests of one cell still waiting for replies.

    :meth:`on_reply` is the handler the core gives the driver for every call.
    """

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._lock = threading.Lock()
        self._futures: dict[str, Waiter] = {}

    def add(self, msg_id: str, waiter: Waiter | None = None) -> Any:
        """Register a waiter (a new :class:`ReplySlot` by default) for ``msg_id``."""
        if waiter is None:
            waiter = ReplySlot()
        with self._lock:
            self._futures[msg_id] = waiter
        return waiter

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

    def on_reply(self, body: bytes) -> bool:
        """Hand a reply to the request it answers; drop anything else.

        :returns: True while that request still waits for more replies (see
            :data:`rpccore.driver.ReplyHandler`).
        """
        env = self.decode_reply(body)
        if env is None:
            return False
        msg_id = env["re"]
        waiter = self._futures.get(msg_id)  # a dict read is atomic: no lock
        if waiter is None:
            self._cell.stats.incr("late_replies")
            return False
        if waiter.deliver(env):
            with self._lock:
                if self._futures.get(msg_id) is waiter:
                    del self._futures[msg_id]
            return False
        return True

    def fail_all(self, why: str) -> None:
        with self._lock:
            futures, self._futures = self._futures, {}
        for future in futures.values():
            future.fail(TransportError(why))
