"""The servers' hand-off queue: order, bounds, producers let in as room appears."""

from __future__ import annotations

import threading
import time

from rpccore.bounded_queue import BoundedQueue


def test_items_come_out_in_order() -> None:
    queue: BoundedQueue[int] = BoundedQueue(10)
    for i in range(5):
        queue.put(i)
    assert queue.qsize() == 5
    assert [queue.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert queue.qsize() == 0


def test_put_blocks_while_full_and_resumes_when_a_consumer_takes_one() -> None:
    queue: BoundedQueue[int] = BoundedQueue(2)
    queue.put(1)
    queue.put(2)
    done = threading.Event()

    def produce() -> None:
        queue.put(3)
        done.set()

    threading.Thread(target=produce, daemon=True).start()
    assert not done.wait(0.2), "put did not wait while the queue was full"
    assert queue.get() == 1
    assert done.wait(5), "put did not resume once there was room"
    assert [queue.get(), queue.get()] == [2, 3]


def test_unbounded_put_ignores_the_limit() -> None:
    queue: BoundedQueue[int] = BoundedQueue(1)
    queue.put(1)
    queue.put_nowait_unbounded(2)
    assert queue.qsize() == 2


def test_many_producers_and_consumers_deliver_every_item_once() -> None:
    queue: BoundedQueue[int | None] = BoundedQueue(8)
    received: list[int] = []
    lock = threading.Lock()

    def consume() -> None:
        while True:
            item = queue.get()
            if item is None:
                return
            with lock:
                received.append(item)

    def produce(base: int) -> None:
        for i in range(2000):
            queue.put(base + i)

    consumers = [threading.Thread(target=consume, daemon=True) for _ in range(6)]
    producers = [threading.Thread(target=produce, args=(k * 10000,), daemon=True) for k in range(4)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join(30)
    for _ in consumers:
        queue.put_nowait_unbounded(None)
    for thread in consumers:
        thread.join(30)
        assert not thread.is_alive()
    assert sorted(received) == sorted(k * 10000 + i for k in range(4) for i in range(2000))


def test_producers_waiting_for_room_get_in_as_soon_as_a_consumer_goes_idle() -> None:
    # every item taken lets one waiting producer in (no producer sits out
    # its one-second guard against a lost wake-up)
    queue: BoundedQueue[int] = BoundedQueue(1)
    queue.put(0)
    for i in (1, 2, 3):
        threading.Thread(target=queue.put, args=(i,), daemon=True).start()
    end = time.monotonic() + 5
    while queue._waiting < 3:
        assert time.monotonic() < end, "producers never waited"
        time.sleep(0.001)
    start = time.monotonic()
    got = [queue.get() for _ in range(4)]
    assert sorted(got) == [0, 1, 2, 3]
    assert time.monotonic() - start < 0.5
