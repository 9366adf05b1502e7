"""What a notification is: its priorities, its envelope, and what a listener's
endpoints receive of it.

On the wire a notification is an envelope of kind ``"notification"`` (see
:mod:`rpccore.envelope` for its fields). A listener opens it into a
:class:`Notification`, which endpoint methods receive as separate arguments
(``ctx, publisher_id, event_type, payload, metadata``) or, in batches, as
dicts (:meth:`Notification.as_dict`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rpccore import envelope
from rpccore.errors import InvalidDestination, InvalidMessage
from rpccore.message import new_id

#: The priorities, which are also the names of the endpoint methods that
#: receive them. Nothing else is ever dispatched.
PRIORITIES: tuple[str, ...] = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class NotificationResult(enum.Enum):
    """What an endpoint method may return about a notification."""

    #: Handled (returning ``None`` means the same).
    HANDLED = "handled"
    #: Give the notification back, to be delivered again later (to this or
    #: another listener of the pool), where the backend can.
    REQUEUE = "requeue"


#: ``return rpccore.REQUEUE`` from an endpoint method to have the
#: notification delivered again later.
REQUEUE = NotificationResult.REQUEUE


# (second, its ISO 8601 text): formatting a whole datetime per notification
# cost more than the rest of the envelope; only the microseconds change
_second: tuple[int, str] = (-1, "")


def utc_timestamp() -> str:
    """Now, in UTC, as ISO 8601 with microseconds
    (``2026-12-07T09:17:02.123456+00:00``, what ``datetime.isoformat`` writes)."""
    global _second
    now = time.time()
    second = int(now)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int((now - second) * 1e6):06d}+00:00"


def check_topics(topics: Iterable[str] | str) -> tuple[str, ...]:
    """``topics`` as a tuple of topic names.

    :raises InvalidDestination: a plain string (a common slip for a list of
        one), an empty list, or a topic that is not a non-empty string.
    """
    if isinstance(topics, str):
        raise InvalidDestination(f"topics is a list of topic names, not a string: write "
                                 f"[{topics!r}]")
    try:
        found = tuple(topics)
    except TypeError:
        raise InvalidDestination(
            f"topics is a list of topic names, not {type(topics).__name__}") from None
    if not found:
        raise InvalidDestination("topics is empty: name at least one topic")
    for topic in found:
        if type(topic) is not str or not topic:
            raise InvalidDestination(f"a topic is a non-empty string, not {topic!r}")
    return found


def notification_envelope(publisher_id: str, priority: str, ctx: dict[str, Any],
                          event_type: str, payload: Any) -> dict[str, Any]:
    """The envelope of a new notification (not encoded yet).

    :raises InvalidMessage: ``event_type`` is not a non-empty string.
    """
    if type(event_type) is not str or not event_type:
        raise InvalidMessage(f"event_type is a non-empty string, not {event_type!r}")
    env = {"v": envelope.VERSION, "id": new_id(), "kind": "notification",
           "ts": utc_timestamp(), "pub": publisher_id, "event": event_type,
           "prio": priority, "ctx": ctx}
    if payload is not None:  # no null in the envelope (see rpccore.envelope)
        env["payload"] = payload
    return env


@dataclass(slots=True)  # (not frozen: a frozen dataclass is slower to build)
class Notification:
    """A notification as a listener received it."""

    priority: str
    ctx: dict[str, Any]
    publisher_id: str
    event_type: str
    payload: Any
    #: ``message_id`` and ``timestamp`` (ISO 8601, UTC)
    metadata: dict[str, str]

    @classmethod
    def from_envelope(cls, env: dict[str, Any]) -> Notification:
        """From an envelope that :func:`rpccore.envelope.decode` checked."""
        return cls(env["prio"], env["ctx"], env["pub"], env["event"], env.get("payload"),
                   {"message_id": env["id"], "timestamp": env["ts"]})

    def as_dict(self) -> dict[str, Any]:
        """What a batch endpoint receives for this notification."""
        return {"ctx": self.ctx, "publisher_id": self.publisher_id,
                "event_type": self.event_type, "payload": self.payload,
                "metadata": self.metadata, "priority": self.priority}
