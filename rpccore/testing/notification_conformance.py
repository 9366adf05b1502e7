"""Notification behaviours (docs/notifications.rst) every driver that
carries them must show (pytest), written once.

Two mixins, for a driver test class that derives from
:class:`~rpccore.testing.DriverConformance` (whose helpers ``rpc``,
``topic``, ``patience`` and ``_rpcs`` they use):

- :class:`NotificationConformance`: every driver that implements
  ``Driver.notify`` and ``Driver.listen``;
- :class:`BrokerNotificationConformance` (includes the first): drivers with
  ``Driver.stores_notifications`` (a stopped pool's backlog, retention).

A driver includes them with one line, once it implements notify/listen::

    class TestRabbitConformance(BrokerDriverConformance, BrokerNotificationConformance):

Every test's name starts with ``test_notification``, so ``pytest
tests/conformance/test_rabbit.py -k test_notification`` runs just these.
A broker driver's own test of losing none of the notifications the broker
confirmed across a broker restart lives with that driver (it needs a
private broker process).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from rpccore.notify.filter import NotificationFilter
from rpccore.notify.message import PRIORITIES, REQUEUE, NotificationResult
from rpccore.testing import wait_until
from rpccore.testing.notifications import NotificationRecorder

if TYPE_CHECKING:
    from rpccore.notify.listener import Listener
    from rpccore.rpc import RPC
    from rpccore.server import Server

#: the keys of each dict a batch endpoint receives
BATCH_KEYS = {"ctx", "publisher_id", "event_type", "payload", "metadata", "priority"}


class RequeueOnce(NotificationRecorder):
    """Returns REQUEUE the first time it sees a notification; keeps it the second."""

    def __init__(self) -> None:
        super().__init__()
        self.offered: list[str] = []
        self._lock = threading.Lock()

    def info(self, ctx: dict[str, Any], publisher_id: str,  # type: ignore[override]
             event_type: str, payload: Any,
             metadata: dict[str, str]) -> NotificationResult | None:
        with self._lock:
            first = metadata["message_id"] not in self.offered
            self.offered.append(metadata["message_id"])
        if first:
            return REQUEUE
        self.record("info", ctx, publisher_id, event_type, payload, metadata)
        return None


class BatchRecorder:
    """A batch endpoint: keeps each list it receives."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[dict[str, Any]]]] = []
        self._cond = threading.Condition()

    def info(self, batch: list[dict[str, Any]]) -> None:
        with self._cond:
            self.batches.append((time.monotonic(), batch))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Every notification of every batch, once there are ``count``."""
        with self._cond:
            self._cond.wait_for(lambda: sum(len(b) for _, b in self.batches) >= count,
                                timeout)
            return [item for _, batch in self.batches for item in batch]


class Faulty(NotificationRecorder):
    """Raises for event type ``boom``, records everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.booms = 0

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        if event_type == "boom":
            self.booms += 1
            raise RuntimeError("endpoint failure on purpose")
        self.record("info", ctx, publisher_id, event_type, payload, metadata)


class ErrorsOnly(NotificationRecorder):
    """Has a method for ``error`` only."""

    audit = debug = info = warn = critical = sample = None  # type: ignore[assignment]


def _values(recorder: NotificationRecorder) -> list[Any]:
    return sorted(n.payload["n"] for n in recorder.notifications)


class NotificationConformance:
    """Pools, priorities, filters, requeue and batches on the driver under test."""

    patience: float
    #: Whether the driver's ``Incoming.requeue`` redelivers (True) or the
    #: notification is dropped, counted and logged instead (False).
    requeues_notifications: bool = True
    #: Seconds a test waits to be sure that nothing more arrives.
    settle_time: float = 0.3

    if TYPE_CHECKING:
        _rpcs: list[RPC]
        hosts: tuple[str, ...]

        def serve(self, topic: str, host: str | None = None, name: str | None = None,
                  workers: int | None = None, **options: Any) -> tuple[Any, Server]: ...

        def rpc(self, host: str | None = None, **options: Any) -> RPC: ...

        @staticmethod
        def topic(label: str = "") -> str: ...

    def listen(self, topic: str, endpoints: list[object], pool: str | None = None,
               batch_size: int | None = None, batch_timeout: float | None = None,
               **options: Any) -> Listener:
        """A started listener of ``topic`` on an ``RPC`` of its own."""
        rpc = self.rpc(None, **options)
        return rpc.listener([topic], endpoints, pool=pool, batch_size=batch_size,
                            batch_timeout=batch_timeout).start()

    def notify_many(self, topic: str, count: int, publisher_id: str = "conformance.pub",
                    **options: Any) -> None:
        notifier = self.rpc(None, **options).notifier(publisher_id, topics=[topic])
        for n in range(count):
            notifier.info({}, "conformance.event", {"n": n})

    def test_notifications_broker_suite_included_when_the_driver_stores_them(self) -> None:
        driver = self.rpc().cell().driver()
        if driver.stores_notifications:
            assert isinstance(self, BrokerNotificationConformance), (
                f"{type(driver).__name__} stores notifications: derive the test class from "
                "BrokerNotificationConformance, not NotificationConformance")

    def test_notifications_reach_every_pool_once(self) -> None:
        topic = self.topic("pools")
        pools = [None, "billing", "search.#*/ é"]
        recorders = [NotificationRecorder() for _ in pools]
        for pool, recorder in zip(pools, recorders, strict=True):
            self.listen(topic, [recorder], pool=pool)
        self.notify_many(topic, 20)
        for recorder in recorders:
            recorder.wait_for(20, self.patience)
        time.sleep(self.settle_time)  # duplicates would come now
        for recorder in recorders:
            assert _values(recorder) == list(range(20))

    def test_notifications_are_shared_by_the_listeners_of_a_pool(self) -> None:
        topic = self.topic("shared")
        first, second, other = (NotificationRecorder() for _ in range(3))
        self.listen(topic, [first], pool="workers")
        self.listen(topic, [second], pool="workers")
        self.listen(topic, [other], pool="workers.other")
        self.notify_many(topic, 40)
        assert wait_until(lambda: len(first.notifications) + len(second.notifications) >= 40,
                          self.patience)
        other.wait_for(40, self.patience)
        time.sleep(self.settle_time)
        assert sorted(_values(first) + _values(second)) == list(range(40))
        assert first.notifications and second.notifications, "one listener got them all"
        assert _values(other) == list(range(40))

    def test_notification_priorities_reach_their_methods_with_every_field(self) -> None:
        topic = self.topic("priorities")
        everything = NotificationRecorder()
        errors_only = ErrorsOnly()
        listener = self.listen(topic, [everything, errors_only])
        payloads: list[Any] = [{"id": 1, "name": "é€😀"}, [1, "two", None], "text", None, 42,
                               {"nested": {"deep": [True, 1.5]}}, {}]
        rpc = self.rpc()
        notifier = rpc.notifier("compute.host-1", topics=[topic])
        for priority, payload in zip(PRIORITIES, payloads, strict=True):
            getattr(notifier, priority)({"user": "u1", "request_id": priority},
                                        f"compute.instance.{priority}", payload)
        got = {n.priority: n for n in everything.wait_for(len(PRIORITIES), self.patience)}
        assert set(got) == set(PRIORITIES)
        now = datetime.now(UTC)
        for priority, payload in zip(PRIORITIES, payloads, strict=True):
            note = got[priority]
            assert note.ctx == {"user": "u1", "request_id": priority}
            assert note.publisher_id == "compute.host-1"
            assert note.event_type == f"compute.instance.{priority}"
            assert note.payload == payload
            assert set(note.metadata) == {"message_id", "timestamp"}
            emitted = datetime.fromisoformat(note.metadata["timestamp"])
            offset = emitted.utcoffset()
            assert offset is not None and offset.total_seconds() == 0, "not in UTC"
            assert abs((now - emitted).total_seconds()) < 60
        assert len({n.metadata["message_id"] for n in got.values()}) == len(PRIORITIES)
        time.sleep(self.settle_time)  # what errors_only has no method for is not redelivered
        assert [n.priority for n in errors_only.notifications] == ["error"]
        assert len(everything.notifications) == len(PRIORITIES)
        assert listener.cell.stats.get("notifications_received") == len(PRIORITIES)
        assert rpc.stats()[rpc.default_cell]["notifications_sent"] == len(PRIORITIES)

    def test_notification_topics_are_apart_from_each_other_and_from_rpc_topics(self) -> None:
        base = self.topic("topics")
        a, b, c = NotificationRecorder(), NotificationRecorder(), NotificationRecorder()
        self.listen(base, [a])
        self.listen(base + ".b", [b])
        self.listen(base + ".c", [c])
        _, server = self.serve(base, self.hosts[0])  # an RPC server of the same topic
        notifier = self.rpc().notifier("conformance.pub", topics=[base, base + ".b"])
        notifier.info({}, "both", {"n": 0})
        self.rpc().notifier("conformance.pub", topics=[self.topic("nobody")]).info(
            {}, "nobody listens", {"n": 1})  # not an error
        a.wait_for(1, self.patience)
        b.wait_for(1, self.patience)
        time.sleep(self.settle_time)
        assert len(a.notifications) == len(b.notifications) == 1
        assert c.notifications == []
        assert server.cell.stats.get("received") == 0

    def test_notification_filters_choose_what_each_endpoint_gets(self) -> None:
        topic = self.topic("filters")
        unfiltered = NotificationRecorder()
        by_event = NotificationRecorder(NotificationFilter(event_type=r"compute\.instance\."))
        by_publisher = NotificationRecorder(NotificationFilter(publisher_id="^api$"))
        by_context = NotificationRecorder(NotificationFilter(context={"project": "^p1$"}))
        by_payload = NotificationRecorder(NotificationFilter(
            payload={"state": "^active$", "flavor": {"id": "^42$"}}))
        self.listen(topic, [unfiltered, by_event, by_publisher, by_context, by_payload])
        sent = [("api", {"project": "p1"}, "compute.instance.create", {"state": "active"}),
                ("api", {}, "compute.volume.create",
                 {"state": "active", "flavor": {"id": 42}}),
                ("compute", {"project": "p10"}, "compute.instance.delete",
                 {"state": "deleted", "flavor": {"id": 42}}),
                ("api2", {"project": "p1"}, "image.upload", {"state": "active",
                                                            "flavor": {"id": "42"}})]
        for publisher, ctx, event, payload in sent:
            self.rpc().notifier(publisher, topics=[topic]).info(ctx, event, payload)
        unfiltered.wait_for(len(sent), self.patience)
        time.sleep(self.settle_time)

        def events(recorder: NotificationRecorder) -> list[str]:
            return sorted(n.event_type for n in recorder.notifications)

        assert events(by_event) == ["compute.instance.create", "compute.instance.delete"]
        assert events(by_publisher) == ["compute.instance.create", "compute.volume.create"]
        assert events(by_context) == ["compute.instance.create", "image.upload"]
        assert events(by_payload) == ["compute.volume.create", "image.upload"]

    def test_notification_requeue_delivers_again(self, caplog: pytest.LogCaptureFixture) -> None:
        topic = self.topic("requeue")
        endpoint = RequeueOnce()
        listener = self.listen(topic, [endpoint])
        self.notify_many(topic, 5)
        stats = listener.cell.stats
        if self.requeues_notifications:
            endpoint.wait_for(5, self.patience)
            assert _values(endpoint) == list(range(5))
            assert wait_until(lambda: stats.get("notifications_requeued") == 5,
                              self.patience)
        else:
            with caplog.at_level(logging.WARNING):
                assert wait_until(lambda: stats.get("notifications_not_requeued") == 5,
                                  self.patience)
            assert any("requeue" in r.getMessage() for r in caplog.records)
            time.sleep(self.settle_time)
            assert endpoint.notifications == []
        assert len(endpoint.offered) == (10 if self.requeues_notifications else 5)

    def test_notification_endpoint_exceptions_are_logged_and_acknowledged(
            self, caplog: pytest.LogCaptureFixture) -> None:
        topic = self.topic("faulty")
        endpoint = Faulty()
        self.listen(topic, [endpoint])
        notifier = self.rpc().notifier("conformance.pub", topics=[topic])
        with caplog.at_level(logging.ERROR):
            notifier.info({}, "boom", {"n": 0})
            notifier.info({}, "fine", {"n": 1})
            endpoint.wait_for(1, self.patience)
            assert wait_until(lambda: endpoint.booms == 1, self.patience)
            time.sleep(self.settle_time)  # not redelivered
        assert endpoint.booms == 1
        assert any(r.exc_info and "boom" in r.getMessage() for r in caplog.records)

    def test_notification_batches_hold_up_to_batch_size(self) -> None:
        topic = self.topic("batch-size")
        endpoint = BatchRecorder()
        self.listen(topic, [endpoint], batch_size=5, batch_timeout=self.patience)
        self.notify_many(topic, 10)
        items = endpoint.wait_for(10, self.patience)
        assert [len(batch) for _, batch in endpoint.batches] == [5, 5]
        assert sorted(item["payload"]["n"] for item in items) == list(range(10))
        for item in items:
            assert set(item) == BATCH_KEYS
            assert item["priority"] == "info"
            assert item["event_type"] == "conformance.event"
            assert item["publisher_id"] == "conformance.pub"
            assert set(item["metadata"]) == {"message_id", "timestamp"}

    def test_notification_batch_timeout_hands_on_a_partial_batch(self) -> None:
        topic = self.topic("batch-timeout")
        endpoint = BatchRecorder()
        self.listen(topic, [endpoint], batch_size=50, batch_timeout=0.5)
        start = time.monotonic()
        self.notify_many(topic, 3)
        items = endpoint.wait_for(3, self.patience)
        assert sorted(item["payload"]["n"] for item in items) == [0, 1, 2]
        first_batch_at = endpoint.batches[0][0] - start
        # not at once (the batch was not full), and not much after the timeout
        assert 0.4 <= first_batch_at < 0.5 + self.patience / 2, first_batch_at


class BrokerNotificationConformance(NotificationConformance):
    """What drivers with ``stores_notifications`` also show: a pool's backlog
    kept while none of its listeners runs, within the retention bounds."""

    def _stopped_pool(self, topic: str, pool: str, **options: Any) -> None:
        """Make ``pool`` exist (it listened once), then stop its only listener."""
        listener = self.listen(topic, [NotificationRecorder()], pool=pool, **options)
        listener.stop()
        assert listener.wait(self.patience)

    def _dropped(self) -> int:
        return sum(rpc.cell(rpc.default_cell).stats.get("notifications_dropped")
                   for rpc in self._rpcs)

    def test_notification_backlog_of_a_stopped_pool_waits_for_it(self) -> None:
        topic = self.topic("backlog")
        self._stopped_pool(topic, "billing")
        running = NotificationRecorder()
        self.listen(topic, [running], pool="search")
        self.notify_many(topic, 1000)
        running.wait_for(1000, self.patience * 3)
        returning = NotificationRecorder()
        self.listen(topic, [returning], pool="billing")
        returning.wait_for(1000, self.patience * 3)
        time.sleep(self.settle_time)
        assert set(_values(returning)) == set(range(1000))
        assert set(_values(running)) == set(range(1000))
        assert self._dropped() == 0

    def test_notification_retention_cap_drops_counts_and_logs_the_excess(
            self, caplog: pytest.LogCaptureFixture) -> None:
        topic = self.topic("cap")
        cap: dict[str, Any] = {"notification_max_queue_length": 10}
        with caplog.at_level(logging.WARNING):
            self._stopped_pool(topic, "capped", **cap)
            self.notify_many(topic, 25, **cap)
            returning = NotificationRecorder()
            self.listen(topic, [returning], pool="capped", **cap)
            returning.wait_for(10, self.patience)
            assert wait_until(lambda: self._dropped() == 15, self.patience), self._dropped()
            time.sleep(self.settle_time)
        values = _values(returning)
        assert len(values) == 10 and len(set(values)) == 10, values
        assert set(values) <= set(range(25))
        assert any("drop" in r.getMessage().lower() for r in caplog.records
                   if r.levelno >= logging.WARNING)

    def test_notifications_older_than_the_ttl_are_not_delivered(self) -> None:
        topic = self.topic("ttl")
        ttl: dict[str, Any] = {"notification_ttl": 1.0}
        self._stopped_pool(topic, "late", **ttl)
        self.notify_many(topic, 5, **ttl)
        time.sleep(1.5)
        returning = NotificationRecorder()
        self.listen(topic, [returning], pool="late", **ttl)
        self.rpc(None, **ttl).notifier("conformance.pub", topics=[topic]).info(
            {}, "fresh", {"n": 99})
        returning.wait_for(1, self.patience)
        time.sleep(self.settle_time)
        assert [n.event_type for n in returning.notifications] == ["fresh"]

