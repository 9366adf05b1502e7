"""rpccore.driverkit.mailbox: items from any thread, a wake-up for the consumer."""

from __future__ import annotations

import os
import select
import threading
import time

import pytest

from rpccore.driverkit import Empty, Mailbox


def test_get_blocks_until_an_item_comes() -> None:
    box: Mailbox[int] = Mailbox()
    threading.Timer(0.05, box.put, (7,)).start()
    assert box.get(5) == 7
    with pytest.raises(Empty):
        box.get(0.01)


def test_take_in_order_with_a_limit() -> None:
    box: Mailbox[int] = Mailbox()
    for i in range(5):
        box.put(i)
    assert len(box) == 5
    assert box.take(2) == [0, 1]
    assert box.take() == [2, 3, 4]
    assert box.take() == []


def test_a_put_wakes_a_consumer_sleeping_on_the_descriptor() -> None:
    box: Mailbox[str] = Mailbox()
    poller = select.poll()
    poller.register(box.fileno(), select.POLLIN)
    assert box.sleeping()
    threading.Timer(0.05, box.put, ("work",)).start()
    start = time.monotonic()
    ready = poller.poll(5000)
    box.woken(bool(ready))
    assert ready and time.monotonic() - start < 4
    assert box.take() == ["work"]
    # the descriptor was read out: the next sleep is not cut short
    assert box.sleeping()
    assert poller.poll(50) == []
    box.woken(False)
    box.close()


def test_no_wake_up_byte_while_the_consumer_is_awake() -> None:
    box: Mailbox[int] = Mailbox()
    fd = box.fileno()
    for i in range(100):
        box.put(i)   # the consumer is not asleep: no system call, nothing to read
    assert select.select([fd], [], [], 0)[0] == []
    assert not box.sleeping()   # items are waiting: it must not sleep
    box.woken(False)
    assert len(box.take()) == 100
    box.close()


def test_wait_returns_readable_descriptors_or_items() -> None:
    box: Mailbox[int] = Mailbox()
    read_fd, write_fd = os.pipe()
    try:
        assert box.wait(0.01, [read_fd]) == []        # nothing: the timeout
        os.write(write_fd, b"x")
        assert box.wait(5, [read_fd]) == [read_fd]    # the socket, say, is readable
        os.read(read_fd, 1)
        threading.Timer(0.05, box.put, (1,)).start()
        start = time.monotonic()
        assert box.wait(5, [read_fd]) == []           # woken by the item
        assert time.monotonic() - start < 4 and box.take() == [1]
    finally:
        for fd in (read_fd, write_fd):
            os.close(fd)
        box.close()


def test_wake_without_an_item_is_never_lost() -> None:
    box: Mailbox[int] = Mailbox()
    box.wake()   # before the consumer sleeps: its next sleep is skipped
    start = time.monotonic()
    assert box.wait(5) == [] and time.monotonic() - start < 1
    threading.Timer(0.05, box.wake).start()
    start = time.monotonic()
    assert box.wait(5) == [] and time.monotonic() - start < 4
    box.close()


def test_many_producers_lose_nothing() -> None:
    box: Mailbox[int] = Mailbox()
    total = 4 * 2000

    def produce(base: int) -> None:
        for i in range(2000):
            box.put(base + i)

    threads = [threading.Thread(target=produce, args=(k * 10000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    got: list[int] = []
    end = time.monotonic() + 10
    while len(got) < total and time.monotonic() < end:
        got.extend(box.take())
        box.wait(0.05)
    for thread in threads:
        thread.join(5)
    got.extend(box.take())
    assert sorted(got) == sorted(k * 10000 + i for k in range(4) for i in range(2000))
    # each producer's items stay in order
    for k in range(4):
        mine = [x for x in got if k * 10000 <= x < (k + 1) * 10000]
        assert mine == sorted(mine)
    box.close()


def test_puts_after_close_queue_without_waking() -> None:
    box: Mailbox[int] = Mailbox()
    box.fileno()
    box.close()
    box.close()
    box.put(1)
    box.wake()
    assert box.take() == [1]


def test_an_event_loop_of_its_own_is_woken_once_per_burst() -> None:
    wakes: list[int] = []
    box: Mailbox[int] = Mailbox(wake=lambda: wakes.append(1))
    for i in range(50):
        box.put(i)
    assert len(wakes) == 1          # one wake-up for the burst
    assert box.take() == list(range(50))
    box.put(50)
    assert len(wakes) == 2          # taken since: the next put wakes again
    box.put(51)
    assert len(wakes) == 2
    assert box.take() == [50, 51]


def test_an_external_wake_up_is_never_lost_under_racing_puts() -> None:
    woken = threading.Semaphore(0)
    box: Mailbox[int] = Mailbox(wake=woken.release)
    total = 4 * 1000

    def produce(base: int) -> None:
        for i in range(1000):
            box.put(base + i)

    threads = [threading.Thread(target=produce, args=(k * 10000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    got: list[int] = []
    while len(got) < total:
        assert woken.acquire(timeout=5), f"no wake-up with {total - len(got)} items left"
        got.extend(box.take())
    for thread in threads:
        thread.join(5)
    assert len(got) == total
