"""Test helpers for notifications: what an application's tests use to see
what it notified.

:class:`NotificationCollector` listens (as a pool of its own, so it takes
nothing from the application's own listeners) and keeps every notification;
:class:`NotificationRecorder` is the endpoint behind it, for tests that build
their own listener::

    from rpccore.testing import NotificationCollector, memory_rpc

    def test_create_notifies() -> None:
        with memory_rpc() as rpc, NotificationCollector(rpc) as notified:
            create_instance(rpc.notifier("compute.host1"))
            [note] = notified.wait_for(1)
            assert note.event_type == "compute.instance.create.end"
            assert note.payload["state"] == "active"

Delivery runs on threads of the driver (even on the memory driver, as on a
real one), so wait for what you expect with :meth:`~NotificationCollector.wait_for`
rather than reading :attr:`~NotificationCollector.notifications` at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rpccore.errors import RPCError
from rpccore.notify.filter import NotificationFilter
from rpccore.notify.message import Notification

if TYPE_CHECKING:
    from rpccore.notify.listener import Listener
    from rpccore.rpc import RPC


class NotificationRecorder:
    """An endpoint with a method for every priority that keeps what it gets.

    :param filter_rule: set as the endpoint's ``filter_rule``.
    """

    def __init__(self, filter_rule: NotificationFilter | None = None) -> None:
        self.filter_rule = filter_rule
        self._seen: list[Notification] = []
        self._cond = threading.Condition()

    @property
    def notifications(self) -> list[Notification]:
        """Everything received so far, in the order received (a copy)."""
        with self._cond:
            return list(self._seen)

    def of(self, event_type: str | None = None, priority: str | None = None,
           publisher_id: str | None = None) -> list[Notification]:
        """What was received so far with these fields (exact values)."""
        return [n for n in self.notifications
                if (event_type is None or n.event_type == event_type)
                and (priority is None or n.priority == priority)
                and (publisher_id is None or n.publisher_id == publisher_id)]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Notification]:
        """Everything received, once there are at least ``count``.

        :raises AssertionError: fewer than ``count`` came in ``timeout`` s
            (the message lists what did).
        """
        end = time.monotonic() + timeout
        with self._cond:
            while len(self._seen) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} notifications within {timeout} s, got "
                        f"{len(self._seen)}: "
                        f"{[(n.priority, n.event_type) for n in self._seen][:20]}")
                self._cond.wait(left)
            return list(self._seen)

    def clear(self) -> None:
        """Forget what was received so far."""
        with self._cond:
            self._seen.clear()

    def record(self, priority: str, ctx: dict[str, Any], publisher_id: str, event_type: str,
               payload: Any, metadata: dict[str, str]) -> None:
        with self._cond:
            self._seen.append(Notification(priority, ctx, publisher_id, event_type, payload,
                                           metadata))
            self._cond.notify_all()

    def audit(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, str]) -> None:
        self.record("audit", ctx, publisher_id, event_type, payload, metadata)

    def debug(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, str]) -> None:
        self.record("debug", ctx, publisher_id, event_type, payload, metadata)

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        self.record("info", ctx, publisher_id, event_type, payload, metadata)

    def warn(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        self.record("warn", ctx, publisher_id, event_type, payload, metadata)

    def error(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
              metadata: dict[str, str]) -> None:
        self.record("error", ctx, publisher_id, event_type, payload, metadata)

    def critical(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
                 metadata: dict[str, str]) -> None:
        self.record("critical", ctx, publisher_id, event_type, payload, metadata)

    def sample(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
               metadata: dict[str, str]) -> None:
        self.record("sample", ctx, publisher_id, event_type, payload, metadata)


class NotificationCollector(NotificationRecorder):
    """Collects every notification on ``topics`` of ``rpc``'s notification
    cell (or ``cell``), as a pool of its own (``pool``: a fresh name unless
    given). Works on every driver that carries notifications.

    Use it as a context manager (listening inside the block), or call
    :meth:`start` and :meth:`stop`. As a pytest fixture::

        @pytest.fixture
        def notified(rpc):
            with NotificationCollector(rpc) as collector:
                yield collector
    """

    def __init__(self, rpc: RPC, topics: Iterable[str] = ("notifications",), *,
                 cell: str | None = None, pool: str | None = None,
                 filter_rule: NotificationFilter | None = None) -> None:
        super().__init__(filter_rule)
        self.pool = pool or f"rpccore-collector-{os.urandom(6).hex()}"
        self.listener: Listener = rpc.listener(topics, [self], pool=self.pool, cell=cell)

    def start(self) -> NotificationCollector:
        """Listen; returns once listening (what is notified after it is collected)."""
        self.listener.start()
        return self

    def stop(self) -> None:
        """Stop listening (what was collected stays). The collector's pool
        is deleted where the driver keeps pools (``Driver.delete_pool``):
        nothing piles up for it once the test is over."""
        self.listener.stop()
        self.listener.wait(10)
        try:
            driver = self.listener.cell.driver()
        except RPCError:  # the cell was closed first: nothing is kept for it
            return
        for topic in self.listener.topics:
            driver.delete_pool(topic, self.pool)

    def __enter__(self) -> NotificationCollector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
