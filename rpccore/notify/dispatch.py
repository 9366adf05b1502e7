"""From a notification to the endpoint methods named after its priority."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rpccore.notify.filter import NotificationFilter
from rpccore.notify.message import PRIORITIES, REQUEUE, Notification

LOG = logging.getLogger(__name__)

_Target = tuple[Callable[..., Any], NotificationFilter | None, str]


def _targets(endpoints: Sequence[object]) -> dict[str, list[_Target]]:
    found: dict[str, list[_Target]] = {}
    for endpoint in endpoints:
        rule = getattr(endpoint, "filter_rule", None)
        if rule is not None and not isinstance(rule, NotificationFilter):
            raise ValueError(f"{type(endpoint).__name__}.filter_rule is a "
                             f"rpccore.NotificationFilter, not {rule!r}")
        for priority in PRIORITIES:
            method = getattr(endpoint, priority, None)
            if callable(method):
                name = f"{type(endpoint).__name__}.{priority}"
                found.setdefault(priority, []).append((method, rule, name))
    return found


class NotificationDispatcher:
    """Runs the endpoint methods of a listener.

    Every endpoint that has a method named after a notification's priority,
    and whose ``filter_rule`` (if any) matches, is called, in the order of
    the endpoints. An exception in a method is logged and counts as
    handled. A method that returns :data:`~rpccore.REQUEUE` has the
    notification requeued; the endpoints after it are not called (all of
    them get it again when it comes back).

    :raises ValueError: no endpoint has a method named after a priority,
        or a ``filter_rule`` is not a :class:`NotificationFilter`.
    """

    def __init__(self, endpoints: Iterable[object]) -> None:
        endpoints = list(endpoints)
        self._targets = _targets(endpoints)
        if not self._targets:
            raise ValueError(f"no endpoint has a method named after a priority "
                             f"({', '.join(PRIORITIES)}): {endpoints!r}")

    def dispatch(self, note: Notification) -> bool:
        """Run the methods for one notification; True when it must be requeued."""
        for method, rule, name in self._targets.get(note.priority, ()):
            if rule is not None and not rule.matches(note.ctx, note.publisher_id,
                                                     note.event_type, note.payload):
                continue
            try:
                result = method(note.ctx, note.publisher_id, note.event_type, note.payload,
                                note.metadata)
            except Exception:
                LOG.exception("notification endpoint %s raised on %s %s (%s); the "
                              "notification is acknowledged", name, note.event_type,
                              note.metadata["message_id"], note.publisher_id)
                continue
            if result is REQUEUE:
                return True
        return False

    def dispatch_batch(self, batch: Sequence[Notification]) -> set[int]:
        """Run the methods for a batch: each gets one list of dicts, the
        notifications of its priority that its filter lets through, in the
        order received. Returns the indices (in ``batch``) to requeue."""
        requeue: set[int] = set()
        by_priority: dict[str, list[int]] = {}
        for index, note in enumerate(batch):
            by_priority.setdefault(note.priority, []).append(index)
        for priority, indices in by_priority.items():
            for method, rule, name in self._targets.get(priority, ()):
                chosen = [i for i in indices if i not in requeue and (
                    rule is None or rule.matches(batch[i].ctx, batch[i].publisher_id,
                                                 batch[i].event_type, batch[i].payload))]
                if not chosen:
                    continue
                try:
                    result = method([batch[i].as_dict() for i in chosen])
                except Exception:
                    LOG.exception("batch notification endpoint %s raised on %d "
                                  "notifications; they are acknowledged", name, len(chosen))
                    continue
                if result is REQUEUE:
                    requeue.update(chosen)
        return requeue
