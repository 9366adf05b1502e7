"""Notifications on the nats driver, at the driver level (``Driver.notify``,
``Driver.listen``, ``Incoming.requeue``), against the machine's NATS with
JetStream: pools, sharing within a pool, the backlog a pool keeps while
none of its listeners runs, requeue, and bounded retention that counts what
it drops.

Every test uses its own control exchange; the streams it made are deleted
at the end.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_nats import NATS_URL, delete_streams
from rpccore import RPC
from rpccore.driver import Driver, Incoming, Subscription
from rpccore.testing import single_cell_rpc, wait_until
from rpccore_nats.naming import Subjects

PATIENCE = 10.0


class Collector:
    """A listener's ``on_message``: records bodies, acknowledges (or
    requeues the first ``requeue_first`` deliveries)."""

    def __init__(self, requeue_first: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.requeued: list[bytes] = []
        self._requeue_left = requeue_first
        self._lock = threading.Lock()

    def __call__(self, incoming: Incoming) -> None:
        with self._lock:
            if self._requeue_left > 0:
                self._requeue_left -= 1
                self.requeued.append(incoming.body)
                assert incoming.requeue() is True
                return
            self.bodies.append(incoming.body)
        incoming.ack()


class NotificationCell:
    """RPC objects on one fresh control exchange; closes them and deletes
    the streams its topics made."""

    def __init__(self) -> None:
        self.exchange = f"notify-{os.urandom(4).hex()}"
        self.rpcs: list[RPC] = []
        self.topics: set[str] = set()

    def driver(self, **options: Any) -> Driver:
        rpc = single_cell_rpc(NATS_URL, control_exchange=self.exchange, **options)
        self.rpcs.append(rpc)
        return rpc.cell().driver()

    def topic(self, label: str) -> str:
        topic = f"notifications.{label}.{os.urandom(3).hex()}"
        self.topics.add(topic)
        return topic

    def close(self) -> None:
        for rpc in self.rpcs:
            rpc.close()
        subjects = Subjects(self.exchange)
        delete_streams([Subjects.notification_stream(subjects.notifications(t))
                        for t in self.topics])


@pytest.fixture
def cell() -> Iterator[NotificationCell]:
    made = NotificationCell()
    yield made
    made.close()


def publish(driver: Driver, topic: str, count: int, label: str = "n") -> list[bytes]:
    bodies = [f"{label}-{i}".encode() for i in range(count)]
    for body in bodies:
        driver.notify(topic, body, confirm=True)
    return bodies


def test_every_pool_gets_every_notification_once_and_a_pool_shares(
        cell: NotificationCell) -> None:
    topic = cell.topic("pools")
    audit, billing_a, billing_b = Collector(), Collector(), Collector()
    cell.driver().listen(topic, "audit", audit)
    cell.driver().listen(topic, "billing", billing_a)
    cell.driver().listen(topic, "billing", billing_b)
    default = Collector()
    cell.driver().listen(topic, None, default)  # a pool of its own
    sent = publish(cell.driver(), topic, 40)
    assert wait_until(lambda: len(audit.bodies) == 40, PATIENCE)
    assert wait_until(lambda: len(billing_a.bodies) + len(billing_b.bodies) == 40, PATIENCE)
    assert wait_until(lambda: len(default.bodies) == 40, PATIENCE)
    time.sleep(0.3)  # nothing more arrives
    assert sorted(audit.bodies) == sorted(sent)
    assert sorted(default.bodies) == sorted(sent)
    assert sorted(billing_a.bodies + billing_b.bodies) == sorted(sent)
    assert billing_a.bodies and billing_b.bodies, "the two listeners of a pool share"


def test_plain_notifications_reach_every_pool(cell: NotificationCell) -> None:
    topic = cell.topic("plain")
    first, second = Collector(), Collector()
    cell.driver().listen(topic, "one", first)
    cell.driver().listen(topic, "two", second)
    sender = cell.driver()
    for i in range(20):
        sender.notify(topic, f"plain-{i}".encode())
    assert wait_until(lambda: len(first.bodies) == 20 and len(second.bodies) == 20, PATIENCE)


def test_a_pool_keeps_its_backlog_while_no_listener_runs(cell: NotificationCell) -> None:
    topic = cell.topic("backlog")
    listener = cell.driver()
    early = Collector()
    sub: Subscription = listener.listen(topic, "workers", early)
    publish(cell.driver(), topic, 3, "before")
    assert wait_until(lambda: len(early.bodies) == 3, PATIENCE)
    sub.close()
    missed = publish(cell.driver(), topic, 25, "while-down")
    later = Collector()
    cell.driver().listen(topic, "workers", later)
    assert wait_until(lambda: len(later.bodies) == 25, PATIENCE)
    assert sorted(later.bodies) == sorted(missed)


def test_requeue_delivers_again(cell: NotificationCell) -> None:
    topic = cell.topic("requeue")
    collector = Collector(requeue_first=3)
    driver = cell.driver()
    driver.listen(topic, "retry", collector)
    sent = publish(cell.driver(), topic, 5)
    assert wait_until(lambda: len(collector.bodies) == 5, PATIENCE)
    assert sorted(collector.bodies) == sorted(sent)
    assert len(collector.requeued) == 3


def test_retention_cap_drops_the_oldest_and_counts_them(cell: NotificationCell) -> None:
    topic = cell.topic("cap")
    options = {"notification_max_queue_length": 5}
    listener = cell.driver(**options)
    collector = Collector()
    listener.listen(topic, "slow", collector).close()  # the pool exists from now on
    sent = publish(cell.driver(**options), topic, 12)
    driver = cell.driver(**options)
    later = Collector()
    driver.listen(topic, "slow", later)
    assert wait_until(lambda: len(later.bodies) == 5, PATIENCE)
    time.sleep(0.3)
    assert later.bodies == sent[-5:], "the newest five are kept, in order"
    stats = driver.cell.stats
    assert wait_until(lambda: stats.get("notifications_dropped") == 7, PATIENCE), \
        stats.snapshot()


def test_confirmed_notification_nobody_listens_to_is_returned(cell: NotificationCell) -> None:
    driver = cell.driver()
    driver.notify(cell.topic("nobody"), b"lost", confirm=True)
    assert driver.cell.stats.get("returned") == 1


def test_a_deleted_pool_keeps_nothing(cell: NotificationCell) -> None:
    topic = cell.topic("deleted")
    driver = cell.driver()
    driver.listen(topic, "temporary", Collector()).close()
    driver.delete_pool(topic, "temporary")
    driver.delete_pool(topic, "never-existed")  # fine too
    publish(cell.driver(), topic, 5)
    later = Collector()
    cell.driver().listen(topic, "temporary", later)
    time.sleep(0.5)
    assert later.bodies == [], "a deleted pool starts afresh"
    sent = publish(cell.driver(), topic, 2, "after")
    assert wait_until(lambda: sorted(later.bodies) == sorted(sent), PATIENCE)
