"""Call/reply correlation: the cell's one reply handler and what waits on it.

Every reply of every call of a cell reaches :meth:`PendingCalls.on_reply`
(see :mod:`rpccore.driver`). A request may be answered many times
(keepalives, stream items, then a final reply, or one final reply from each
server of a fanout), so each waiting request has a *waiter* that takes the
reply envelopes of its id:

- :class:`ReplySlot`: one call; keepalives only move its ``heard`` time;
- :class:`ReplyQueue`: a stream or a gather; every envelope is queued for
  the reading thread.

Both are built on the driver toolkit (:mod:`rpccore.driverkit`): the same
completion and mailbox drivers use for their own waits.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.driverkit import Completion, Empty, Mailbox
from rpccore.errors import InvalidMessage, TransportError

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)


class ReplySlot(Completion[dict[str, Any]]):
    """Where one call's reply lands: a :class:`~rpccore.driverkit.Completion`
    of the final reply envelope (or of the cell's failure), which also counts
    the keepalives that came before it.

    :ivar heard: ``time.monotonic()`` of the last thing heard from the server
        (a keepalive); set by the caller when it sends
    :ivar keepalives: how many keepalives arrived
    """

    __slots__ = ("heard", "keepalives")

    def __init__(self) -> None:
        super().__init__()
        self.heard = 0.0
        self.keepalives = 0

    @property
    def reply(self) -> dict[str, Any] | None:
        """The final reply envelope, once it came."""
        return self.value

    @property
    def done(self) -> bool:
        """Whether the call is over: answered, failed, or given up on."""
        return self._done

    @done.setter
    def done(self, value: bool) -> None:
        # ``slot.done = True``: its caller gave up (rpccore.aio); a reply
        # that comes later is ignored
        if value:
            self.abandon()

    def deliver(self, env: dict[str, Any]) -> bool:
        """Take a reply envelope; True once the call is complete."""
        if env.get("part") is not None:  # a keepalive (or an item nobody asked for)
            self.heard = time.monotonic()
            self.keepalives += 1
            return False
        self.set_result(env)
        return True

    def fail(self, error: BaseException) -> None:
        self.set_error(error)


class ReplyQueue:
    """Every reply envelope of one request, in arrival order (streams and
    gathers), in a :class:`~rpccore.driverkit.Mailbox` the reading thread
    takes them from. A failure of the cell is queued as an exception."""

    __slots__ = ("_items", "heard")

    def __init__(self) -> None:
        self._items: Mailbox[dict[str, Any] | BaseException] = Mailbox()
        self.heard = 0.0

    def deliver(self, env: dict[str, Any]) -> bool:
        self._items.put(env)
        return False  # the reader discards the queue itself

    def fail(self, error: BaseException) -> None:
        self._items.put(error)

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next envelope, ``None`` after ``timeout`` seconds.

        :raises TransportError: the cell failed (closed) meanwhile.
        """
        try:
            item = self._items.get(max(timeout, 0.0))
        except Empty:
            return None
        self.heard = time.monotonic()
        if isinstance(item, BaseException):
            raise item
        return item

    def get_nowait(self) -> dict[str, Any] | None:
        """The next envelope if one has arrived, else ``None``, never
        waiting (for readers on an event loop: :mod:`rpccore.aio`).

        :raises TransportError: the cell failed (closed) meanwhile.
        """
        taken = self._items.take(1)
        if not taken:
            return None
        item = taken[0]
        self.heard = time.monotonic()
        if isinstance(item, BaseException):
            raise item
        return item


Waiter = ReplySlot | ReplyQueue


class PendingCalls:
    """The requests of one cell still waiting for replies.

    :meth:`on_reply` is the handler the core gives the driver for every call.
    """

    def __init__(self, cell: CellView) -> None:
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
        """Forget the waiter of ``msg_id``, if it is still registered."""
        # Usually on_reply took it with the final reply: then no lock. Ids
        # are unique, so nobody adds it back between the check and the pop.
        if msg_id in self._futures:
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
