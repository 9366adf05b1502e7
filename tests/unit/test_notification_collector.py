"""rpccore.testing.NotificationCollector, as an application's tests use it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpccore
from rpccore.testing import NotificationCollector, NotificationRecorder, memory_rpc


class Compute:
    def __init__(self, rpc: rpccore.RPC) -> None:
        self.notifier = rpc.notifier("compute.host1")

    def create(self, ctx: dict[str, Any], name: str) -> None:
        self.notifier.info(ctx, "compute.instance.create.start", {"name": name})
        self.notifier.info(ctx, "compute.instance.create.end",
                           {"name": name, "state": "active"})


@pytest.fixture
def rpc() -> Iterator[rpccore.RPC]:
    with memory_rpc() as rpc:
        yield rpc


@pytest.fixture
def notified(rpc: rpccore.RPC) -> Iterator[NotificationCollector]:
    with NotificationCollector(rpc) as collector:
        yield collector


def test_collects_what_the_application_notified(rpc: rpccore.RPC,
                                                notified: NotificationCollector) -> None:
    Compute(rpc).create({"user": "u1"}, "vm1")
    start, end = notified.wait_for(2)
    assert (start.event_type, end.event_type) == ("compute.instance.create.start",
                                                  "compute.instance.create.end")
    assert end.payload == {"name": "vm1", "state": "active"}
    assert end.ctx == {"user": "u1"} and end.priority == "info"
    assert end.publisher_id == "compute.host1"
    assert set(end.metadata) == {"message_id", "timestamp"}
    assert notified.of(event_type="compute.instance.create.end") == [end]
    assert notified.of(priority="error") == []
    notified.clear()
    assert notified.notifications == []


def test_takes_nothing_from_the_applications_own_listeners(
        rpc: rpccore.RPC, notified: NotificationCollector) -> None:
    own = NotificationRecorder()
    rpc.listener(["notifications"], [own]).start()
    Compute(rpc).create({}, "vm1")
    assert len(own.wait_for(2)) == 2
    assert len(notified.wait_for(2)) == 2


def test_wait_for_says_what_came_when_too_little_did(notified: NotificationCollector,
                                                     rpc: rpccore.RPC) -> None:
    rpc.notifier("pub").error({}, "only.one", {})
    with pytest.raises(AssertionError, match=r"expected 2 notifications within 0.3 s, got 1: "
                                             r"\[\('error', 'only.one'\)\]"):
        notified.wait_for(2, timeout=0.3)


def test_other_topics_and_stopping(rpc: rpccore.RPC) -> None:
    collector = NotificationCollector(rpc, topics=["billing"]).start()
    rpc.notifier("pub", topics=["billing", "notifications"]).sample({}, "bytes.out", 10)
    assert [n.payload for n in collector.wait_for(1)] == [10]
    collector.stop()
    rpc.notifier("pub", topics=["billing"]).sample({}, "bytes.out", 20)
    time.sleep(0.1)
    assert [n.payload for n in collector.notifications] == [10]


def test_a_stopped_collector_leaves_no_pool_behind(rpc: rpccore.RPC) -> None:
    collector = NotificationCollector(rpc).start()
    driver = rpc.cell().driver()
    assert driver.stores_notifications
    collector.stop()
    listening = NotificationRecorder()
    rpc.listener(["notifications"], [listening], pool="app").start()
    for i in range(3):
        rpc.notifier("pub").info({}, "after", i)
    listening.wait_for(3)
    again = NotificationRecorder()  # the same pool name listens anew: nothing was kept
    rpc.listener(["notifications"], [again], pool=collector.pool).start()
    time.sleep(0.1)
    assert again.notifications == []


def test_stopping_after_the_rpc_closed_is_harmless() -> None:
    rpc = memory_rpc()
    collector = NotificationCollector(rpc).start()
    rpc.close()
    collector.stop()


def test_the_pytest_plugins_fixture_starts_a_collector(
        rpc_factory: Any, collect_notifications: Any) -> None:
    rpc = rpc_factory()
    notified = collect_notifications(rpc, topics=["billing"])
    assert notified.listener.running
    rpc.notifier("pub", topics=["billing"]).audit({}, "login", {"user": "u1"})
    assert [n.priority for n in notified.wait_for(1)] == ["audit"]
