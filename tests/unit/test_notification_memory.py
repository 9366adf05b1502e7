"""The memory driver's notification pools, through the driver interface."""

from __future__ import annotations

import os
import threading
import time

import pytest

import rpccore
from rpccore.driver import Incoming
from rpccore.testing import NotificationRecorder, memory_rpc, wait_until


class Taker:
    """An ``on_message`` that keeps what it is given, acknowledging nothing."""

    def __init__(self, block_first: threading.Event | None = None) -> None:
        self.taken: list[Incoming] = []
        self._block_first = block_first

    def __call__(self, incoming: Incoming) -> None:
        self.taken.append(incoming)
        if self._block_first is not None and len(self.taken) == 1:
            self._block_first.wait(5)


def bodies(taker: Taker) -> list[bytes]:
    return [incoming.body for incoming in taker.taken]


def test_a_pool_keeps_notifications_only_from_its_first_listen() -> None:
    with memory_rpc() as rpc:
        driver = rpc.cell().driver()
        assert driver.stores_notifications
        driver.notify("t", b"before")  # nobody ever listened: not kept, not an error
        taker = Taker()
        driver.listen("t", "p", taker).close()
        driver.notify("t", b"kept")
        again = Taker()
        driver.listen("t", "p", again)
        assert wait_until(lambda: bodies(again) == [b"kept"])
        assert taker.taken == []


def test_namespaces_and_control_exchanges_are_apart() -> None:
    name = os.urandom(4).hex()
    with memory_rpc(name) as rpc, memory_rpc(name + "-other") as other, \
            memory_rpc(name, control_exchange="other") as exchange:
        seen = [NotificationRecorder() for _ in range(3)]
        for each, recorder in zip((rpc, other, exchange), seen, strict=True):
            each.listener(["t"], [recorder]).start()
        rpc.notifier("pub", topics=["t"]).info({}, "e", {})
        seen[0].wait_for(1)
        time.sleep(0.1)
        assert [len(r.notifications) for r in seen] == [1, 0, 0]


def test_a_listener_holds_at_most_its_prefetch_and_the_pool_keeps_the_rest() -> None:
    with memory_rpc(server_queue_size=2, server_workers=1) as rpc:
        driver = rpc.cell().driver()
        first = Taker()
        driver.listen("t", "p", first)
        for i in range(4):  # three for the listener, one queued
            driver.notify("t", b"%d" % i)
        assert wait_until(lambda: len(first.taken) == 3)
        # the listener is full and one waits already: a notifier waits for
        # room, as a cast's sender does, and queues it at its deadline
        start = time.monotonic()
        driver.notify("t", b"4", deadline=time.monotonic() + 0.3)
        assert 0.25 <= time.monotonic() - start < 2
        second = Taker()
        driver.listen("t", "p", second)
        assert wait_until(lambda: bodies(second) == [b"3", b"4"])
        first.taken[0].ack()
        start = time.monotonic()
        driver.notify("t", b"5", deadline=time.monotonic() + 5)
        assert time.monotonic() - start < 1
        assert wait_until(lambda: len(first.taken) + len(second.taken) == 6)


def test_a_notifier_waiting_for_room_goes_on_once_there_is_some() -> None:
    with memory_rpc(server_queue_size=1, server_workers=1) as rpc:
        driver = rpc.cell().driver()
        taker = Taker()
        sub = driver.listen("t", "p", taker)
        for i in range(3):
            driver.notify("t", b"%d" % i)
        assert wait_until(lambda: len(taker.taken) == 2)
        threading.Timer(0.2, taker.taken[0].ack).start()
        start = time.monotonic()
        driver.notify("t", b"3", deadline=time.monotonic() + 5)  # room after the ack
        assert 0.15 <= time.monotonic() - start < 2
        threading.Timer(0.2, sub.close).start()
        start = time.monotonic()
        driver.notify("t", b"4", deadline=time.monotonic() + 5)  # nobody listens any more
        assert 0.15 <= time.monotonic() - start < 2


def test_a_pool_without_running_listeners_never_holds_a_notifier_up() -> None:
    with memory_rpc() as rpc:
        driver = rpc.cell().driver()
        driver.listen("t", "p", Taker()).close()
        start = time.monotonic()
        for i in range(1000):
            driver.notify("t", b"%d" % i)
        assert time.monotonic() - start < 1


def test_what_a_closed_listener_had_not_delivered_goes_back_first_in_order() -> None:
    with memory_rpc() as rpc:
        driver = rpc.cell().driver()
        release = threading.Event()
        blocked = Taker(release)
        sub = driver.listen("t", "p", blocked)
        for i in range(4):
            driver.notify("t", b"%d" % i)
        assert wait_until(lambda: len(blocked.taken) == 1)  # 1, 2 and 3 wait in its inbox
        closing = threading.Thread(target=sub.close)
        closing.start()
        time.sleep(0.05)
        release.set()
        closing.join(5)
        driver.notify("t", b"4")
        after = Taker()
        driver.listen("t", "p", after)
        assert wait_until(lambda: bodies(after) == [b"1", b"2", b"3", b"4"]), bodies(after)
        assert bodies(blocked) == [b"0"]
        assert blocked.taken[0].requeue()  # still possible after the close
        assert wait_until(lambda: bodies(after)[-1:] == [b"0"])


def test_expired_and_overflowing_notifications_are_counted_where_the_pool_listened() -> None:
    with memory_rpc(notification_ttl=1.0, notification_max_queue_length=3) as rpc, \
            memory_rpc(rpc.cell().url.virtual_host) as notifier_rpc:
        rpc.listener(["t"], [NotificationRecorder()], pool="p").start().stop()
        notifier = notifier_rpc.notifier("pub", topics=["t"])
        for i in range(5):
            notifier.info({}, "e", i)
        dropped = rpc.stats()[rpc.default_cell]["notifications_dropped"]
        assert dropped == 2
        time.sleep(1.2)
        recorder = NotificationRecorder()
        rpc.listener(["t"], [recorder], pool="p").start()
        assert wait_until(lambda: rpc.stats()[rpc.default_cell]["notifications_dropped"] == 5)
        assert recorder.notifications == []
        assert notifier_rpc.stats()[notifier_rpc.default_cell]["notifications_dropped"] == 0


def test_closing_the_driver_stops_its_listeners() -> None:
    rpc = memory_rpc()
    driver = rpc.cell().driver()
    taker = Taker()
    driver.listen("t", None, taker)
    driver.close()
    with pytest.raises(rpccore.TransportError):
        driver.notify("t", b"late")
    time.sleep(0.05)
    assert taker.taken == []
    rpc.close()


def test_a_deleted_pool_keeps_nothing_more() -> None:
    with memory_rpc() as rpc:
        driver = rpc.cell().driver()
        driver.listen("t", "temp", Taker()).close()
        driver.listen("t", "kept", Taker()).close()
        driver.notify("t", b"before")
        driver.delete_pool("t", "temp")
        driver.delete_pool("t", "never existed")
        driver.notify("t", b"after")
        temp, kept = Taker(), Taker()
        driver.listen("t", "temp", temp)
        driver.listen("t", "kept", kept)
        assert wait_until(lambda: bodies(kept) == [b"before", b"after"])
        time.sleep(0.05)
        assert temp.taken == []
