"""When a zmq call polls for its reply (zmq_busy_wait_us): the policy, and
the poll itself on a real (in-process) ZMQ socket pair."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq
from rpccore_zmq.busywait import BusyWait

from rpccore import method_times


def test_a_host_is_polled_for_only_once_its_round_trips_are_known_and_short() -> None:
    busy = BusyWait(0.0005)
    assert busy.budget("tcp://a:1") == 0.0  # nothing known yet
    busy.record("tcp://a:1", 0.0001)
    assert busy.budget("tcp://a:1") == 0.0005
    busy.record("tcp://b:1", 0.0009)  # slept through its wake-up: still polled for
    assert busy.budget("tcp://b:1") == 0.0005
    busy.record("tcp://c:1", 0.0011)
    assert busy.budget("tcp://c:1") == 0.0
    for _ in range(10):  # the host got slow: its average passes twice the limit
        busy.record("tcp://a:1", 0.05)
    assert busy.budget("tcp://a:1") == 0.0
    for _ in range(10):  # and quick again (a slow reply counts as 4x the limit)
        busy.record("tcp://a:1", 0.0001)
    assert busy.budget("tcp://a:1") == 0.0005


def test_one_slow_reply_does_not_stop_the_polling() -> None:
    busy = BusyWait(0.0002)
    for _ in range(10):
        busy.record("h", 0.00015)
    busy.record("h", 1.0)
    assert busy.budget("h") == 0.0002


def test_only_a_call_alone_in_flight_may_poll() -> None:
    busy = BusyWait(0.001)
    assert busy.enter() is True
    assert busy.enter() is False  # a second call meanwhile
    busy.leave()
    busy.leave()
    assert busy.enter() is True
    busy.leave()


def test_the_table_of_hosts_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(method_times, "LIMIT", 2)
    busy = BusyWait(0.001)
    for name in ("a", "b", "c"):
        busy.record(name, 0.0001)
    assert busy.budget("b") > 0 and busy.budget("c") == 0.0


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://busy-wait")
    b.connect("inproc://busy-wait")
    yield a, b
    a.close(linger=0)
    b.close(linger=0)
    ctx.term()


def test_poll_gives_up_after_its_time_and_sees_input(
        pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]]) -> None:
    a, b = pair
    start = time.perf_counter()
    assert BusyWait.poll(a, 0.002) is False
    assert 0.002 <= time.perf_counter() - start < 0.5
    b.send(b"reply")
    assert BusyWait.poll(a, 0.5) is True
    assert a.recv() == b"reply"
