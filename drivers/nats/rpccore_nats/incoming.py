"""The messages the driver hands to rpccore (:class:`rpccore.Incoming`).

- :class:`CoreIncoming`: a core NATS message (a call or a plain cast).
  Replies are published to its reply subject through the outbox, in the
  order they are made; acknowledging does nothing (core NATS is at most
  once).
- :class:`StoredIncoming`: a JetStream message (a confirmed cast or a
  notification). :meth:`StoredIncoming.ack` acknowledges it after the
  endpoint ran; until then JetStream delivers it again if this process dies
  (after ``nats_ack_wait``), and :class:`InFlight` tells JetStream that a
  long-running one is still being worked on.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

from rpccore.driver import Incoming

if TYPE_CHECKING:
    from rpccore_nats.delivery import Deliverer
    from rpccore_nats.loop import Outbox

_ACK, _NAK, _PROGRESS = b"+ACK", b"-NAK", b"+WPI"


class CoreIncoming(Incoming):
    """A call or plain cast from core NATS."""

    __slots__ = ("body", "_reply_to", "_outbox", "_deliverer", "answered")

    def __init__(self, body: bytes, reply_to: str, outbox: Outbox,
                 deliverer: Deliverer) -> None:
        self.body = body
        self._reply_to = reply_to
        self._outbox = outbox
        self._deliverer = deliverer
        #: a reply (or the receipt) went out: no receipt is needed any more
        self.answered = False

    @property
    def can_reply(self) -> bool:
        return bool(self._reply_to)

    def reply(self, body: bytes) -> None:
        if self._reply_to:
            self.answered = True
            self._outbox.put((self._reply_to, body, ""))

    def send_receipt(self) -> None:
        """(loop thread) Tell the caller someone has its request, unless a
        reply did already."""
        if not self.answered:
            self.answered = True
            self._outbox.put((self._reply_to, b"", ""))

    def release_thread(self, expected: float | None = None) -> bool:
        return self._deliverer.release(expected)


class InFlight:
    """The JetStream messages of one subscription handed over and not yet
    acknowledged: how many (to bound what a slow server holds) and since when
    (to send progress for the long-running ones)."""

    def __init__(self) -> None:
        self.messages: dict[int, tuple[str, float]] = {}
        self._ids = itertools.count()

    def add(self, ack_subject: str) -> int:
        key = next(self._ids)
        self.messages[key] = (ack_subject, time.monotonic())
        return key

    def done(self, key: int) -> None:
        self.messages.pop(key, None)

    def overdue(self, older_than: float) -> list[str]:
        """Ack subjects of messages held longer than ``older_than`` seconds."""
        limit = time.monotonic() - older_than
        return [subject for subject, since in list(self.messages.values()) if since < limit]

    def __len__(self) -> int:
        return len(self.messages)


class StoredIncoming(Incoming):
    """A confirmed cast or a notification from JetStream."""

    __slots__ = ("body", "_ack_subject", "_outbox", "_deliverer", "_in_flight", "_key")

    def __init__(self, body: bytes, ack_subject: str, outbox: Outbox,
                 deliverer: Deliverer, in_flight: InFlight) -> None:
        self.body = body
        self._ack_subject = ack_subject
        self._outbox = outbox
        self._deliverer = deliverer
        self._in_flight: InFlight | None = in_flight
        self._key = in_flight.add(ack_subject)

    @property
    def can_reply(self) -> bool:
        return False

    def reply(self, body: bytes) -> None:
        """Casts and notifications are never answered; nothing to do."""

    def release_thread(self, expected: float | None = None) -> bool:
        return self._deliverer.release(expected)

    def _settle(self, verdict: bytes) -> bool:
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:  # once only
            return False
        in_flight.done(self._key)
        if self._ack_subject:
            self._outbox.put((self._ack_subject, verdict, ""))
        return True

    def ack(self) -> None:
        self._settle(_ACK)

    def requeue(self) -> bool:
        """JetStream delivers it again at once (to any listener of the pool)."""
        return self._settle(_NAK)


def progress_payload() -> bytes:
    """What tells JetStream a message is still being worked on."""
    return _PROGRESS
