"""Publisher confirms: which published message the broker has acknowledged,
returned or refused, and who waits for it.

Every message goes out with the mandatory flag on a channel in confirm mode,
numbered 1, 2, 3... in publishing order (the broker numbers its
``basic.ack``/``basic.nack`` the same way). A ``basic.return`` (nobody's queue
is bound to the routing key) comes before the ack of the same message and
names it through the ``message_id`` property this driver sets to the number.

A ``basic.nack`` is usually passing: a quorum queue refuses messages while
it elects a leader (a second or two after its leader's node died). So a
refused message is published again, after 50 ms, 100 ms... (at most 1 s
apart), until its deadline; only then does its sender learn of it.

Notifications are the exception (``Publish.republish`` False): one goes to
every pool queue bound to its key, and a ``basic.nack`` says only that at
least one of them refused it (a full pool queue, ``x-overflow =
reject-publish``), not which; publishing it again would give the other
pools a second copy, and a full queue stays full while its listeners are
down. So a refused notification is final: counted as
``notifications_dropped`` and logged, and its sender (``confirm=True``)
returns normally, as the broker did answer for it.

A sender waits for its message with :func:`wait_for`, on a
:class:`rpccore.driverkit.Completion` the I/O thread completes; all methods
but :meth:`ConfirmTracker.gate` run on the connection's I/O thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)
#: Waits before publishing a refused message again: the first, the longest.
RETRY_FIRST = 0.05
RETRY_MAX = 1.0


def wait_for(done: Completion[Any], deadline: float | None, what: str) -> Any:
    """(A sender) wait until the I/O thread completes ``done``; its result.

    :raises TransportError: not completed by ``deadline``; ``done`` is then
        abandoned, so the I/O thread skips the work if it has not started it
        and ignores a late confirm.
    :raises: the error ``done`` was completed with.
    """
    if not done.wait_until(deadline) and done.abandon():
        raise TransportError(f"{what}: not done before the deadline")
    return done.result()


class Reported(Completion[None]):
    """The waiter of a call whose sender does not wait for the broker's
    confirm (an asyncio caller: :meth:`RabbitDriver.send_nowait`): the
    error it is completed with goes to ``on_failure``, once; a confirm
    completes it quietly."""

    __slots__ = ("_on_failure",)

    def __init__(self, on_failure: Callable[[RPCError], None]) -> None:
        super().__init__()
        self._on_failure = on_failure

    def set_error(self, error: BaseException) -> bool:
        if not super().set_error(error):
            return False
        self._on_failure(error if isinstance(error, RPCError)
                         else TransportError(f"sending failed: {error}"))
        return True


class Publish:
    """A message to publish, with what to do once the broker answers.

    :ivar waiter: set for calls and confirmed casts: what the sender waits on
    :ivar deadline: ``time.monotonic()`` after which the message is not sent
        (or sent again) any more
    :ivar label: the destination, for log lines and errors
    """

    __slots__ = ("exchange", "routing_key", "body", "properties", "mandatory",
                 "waiter", "deadline", "label", "returned", "gated", "refusals", "republish")

    def __init__(self, exchange: str, routing_key: str, body: bytes,
                 properties: dict[str, Any], mandatory: bool, waiter: Completion[Any] | None,
                 deadline: float | None, label: str) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.waiter = waiter
        self.deadline = deadline
        self.label = label
        self.returned = False
        self.gated = False  # holds a permit of the unconfirmed-message limit
        self.refusals = 0   # basic.nack received for it so far
        self.republish = True  # False: a refusal is final (notifications)


class ConfirmTracker:
    """Messages published on the current channel and not yet confirmed.

    :param limit: most messages queued or unconfirmed at once; senders wait
        (:meth:`gate`) beyond it.
    :param stats: the cell's counters (``returned``, ``nacked``).
    """

    def __init__(self, limit: int, stats: Any, name: str) -> None:
        self.limit = limit
        self.stats = stats
        self.name = name
        self.next_tag = 1
        self._pending: dict[int, Publish] = {}
        self._permits = threading.BoundedSemaphore(limit)
        # refused messages waiting to be published again: (when, order, item)
        self._retries: list[tuple[float, int, Publish]] = []
        self._order = itertools.count()

    def gate(self, item: Publish) -> None:
        """Take a permit for ``item`` (any thread), waiting until its deadline.

        :raises TransportError: the limit stayed reached.
        """
        timeout = None if item.deadline is None else max(0.0, item.deadline - time.monotonic())
        if not self._permits.acquire(timeout=timeout):
            raise TransportError(f"{self.limit} messages still wait for the broker's "
                                 "confirmation")
        item.gated = True

    def try_gate(self, item: Publish) -> bool:
        """Take a permit for ``item`` if one is free now (any thread); False
        when the limit is reached (nothing taken)."""
        if not self._permits.acquire(blocking=False):
            return False
        item.gated = True
        return True

    def restart(self) -> None:
        """A new channel: numbering starts again."""
        self.next_tag = 1

    def sent(self, item: Publish) -> int:
        """Record ``item`` as published; returns its number."""
        tag = self.next_tag
        self.next_tag = tag + 1
        item.returned = False
        self._pending[tag] = item
        return tag

    def forget(self, item: Publish, error: BaseException | None) -> None:
        """Give back the permit of ``item`` and fail its waiter with ``error``."""
        if item.gated:
            item.gated = False
            self._permits.release()
        if item.waiter is not None and error is not None:
            item.waiter.set_error(error)

    def _confirmed(self, tag: int, multiple: bool) -> list[Publish]:
        pending = self._pending
        if not multiple:
            item = pending.pop(tag, None)
            return [] if item is None else [item]
        done = []
        while pending:
            first = next(iter(pending))
            if first > tag:
                break
            done.append(pending.pop(first))
        return done

    def on_ack(self, tag: int, multiple: bool) -> None:
        for item in self._confirmed(tag, multiple):
            self.forget(item, None)
            if not item.returned:
                if item.waiter is not None:
                    item.waiter.set_result(None)
            elif item.waiter is not None:
                item.waiter.set_error(Undeliverable(
                    f"nobody consumes {item.label} (rabbit {self.name}): no queue is bound "
                    f"to routing key {item.routing_key!r} on exchange {item.exchange!r}"))
            elif item.mandatory:
                self.stats.incr("returned")
                _RATELOG.warning("returned", "rabbit %s: cast to %s dropped: nobody "
                                 "consumes it", self.name, item.label)

    def on_nack(self, tag: int, multiple: bool) -> None:
        now = time.monotonic()
        for item in self._confirmed(tag, multiple):
            if not item.republish:
                self._dropped(item)
                continue
            wait = min(RETRY_MAX, RETRY_FIRST * 2 ** item.refusals)
            item.refusals += 1
            if item.deadline is not None and now + wait < item.deadline:
                heapq.heappush(self._retries, (now + wait, next(self._order), item))
                _RATELOG.warning("refused", "rabbit %s: the broker refused a message for "
                                 "%s (a quorum queue electing a leader?); publishing it "
                                 "again", self.name, item.label)
                continue
            self.stats.incr("nacked")
            self.forget(item, TransportError(f"the broker refused a message for {item.label}"))
            if item.waiter is None:
                _RATELOG.warning("nacked", "rabbit %s: the broker refused a message for %s",
                                 self.name, item.label)

    def _dropped(self, item: Publish) -> None:
        """A notification some pool's queue refused: over its
        ``x-max-length``, or a quorum queue without a leader for a moment."""
        self.stats.incr("notifications_dropped")
        _RATELOG.warning(f"dropped {self.name}", "rabbit %s: a notification for %s was "
                         "dropped: the broker refused it for a listener pool (its queue is "
                         "full: over notification_max_queue_length)", self.name, item.label)
        self.forget(item, None)
        if item.waiter is not None:
            item.waiter.set_result(None)

    def next_retry(self) -> float | None:
        """When the first refused message is due again (monotonic), if any."""
        return self._retries[0][0] if self._retries else None

    def due(self, now: float) -> list[Publish]:
        """Refused messages to publish again now."""
        items = []
        while self._retries and self._retries[0][0] <= now:
            items.append(heapq.heappop(self._retries)[2])
        return items

    def on_return(self, message_id: str | None) -> None:
        try:
            item = self._pending.get(int(message_id or ""))
        except ValueError:
            return
        if item is not None:
            item.returned = True

    def take_unconfirmed(self) -> list[Publish]:
        """Everything not confirmed, oldest first, then the refused messages
        waiting to be published again (the channel is gone)."""
        items = list(self._pending.values())
        self._pending.clear()
        items += [entry[2] for entry in sorted(self._retries)]
        self._retries.clear()
        return items
