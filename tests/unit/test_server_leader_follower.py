"""The core's side of leader/follower (Driver.leader_follower,
Incoming.release_thread), on the memory driver made to claim it: a request
runs on the delivering thread when the driver lets it go and a slot is free,
on the server's workers otherwise, and never more than ``workers`` at once."""

from __future__ import annotations

import queue
import threading
import time
import types
from typing import Any

import pytest

from rpccore import server as server_module
from rpccore.driver import Incoming
from rpccore.drivers import memory
from rpccore.testing import memory_rpc, wait_until


class Endpoint:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def where(self, ctx: dict[str, Any]) -> str:
        return threading.current_thread().name

    def hold(self, ctx: dict[str, Any], seconds: float) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
        return threading.current_thread().name


class Lends:
    """What the memory driver, made a leader/follower one, answers to
    release_thread (True by default), and the expected seconds it was given."""

    def __init__(self) -> None:
        self.answer = True
        self.expected: list[float | None] = []

    def release_thread(self, incoming: memory._MemoryIncoming,
                       expected: float | None = None) -> bool:
        self.expected.append(expected)
        if self.answer:  # as a leader/follower driver does: another thread delivers now
            incoming.hand_off()
        return self.answer


@pytest.fixture
def lends(monkeypatch: pytest.MonkeyPatch) -> Lends:
    made = Lends()
    monkeypatch.setattr(memory.MemoryDriver, "leader_follower", True)
    monkeypatch.setattr(memory._MemoryIncoming, "release_thread",
                        lambda self, expected=None: made.release_thread(self, expected),
                        raising=False)
    return made


def test_a_request_runs_on_the_delivering_thread_when_the_driver_lets_it_go(
        lends: Lends) -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        # each memory subscription delivers on a thread of its own
        assert rpc.call({}, "svc", {"method": "where", "args": {}}, timeout=5) == (
            "rpccore-memory-svc")


def test_a_request_goes_to_the_workers_when_the_driver_keeps_its_thread(
        lends: Lends) -> None:
    lends.answer = False
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        name = rpc.call({}, "svc", {"method": "where", "args": {}}, timeout=5)
        assert name.startswith("rpccore-svc-")


def test_no_more_than_workers_run_at_once_and_the_rest_wait_for_a_worker(
        lends: Lends) -> None:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        server = rpc.serve("svc", [endpoint], workers=2).start()
        names: list[str] = []

        def call() -> None:
            names.append(rpc.call({}, "svc", {"method": "hold", "args": {"seconds": 0.2}},
                                  timeout=10))

        callers = [threading.Thread(target=call, name=f"caller-{i}") for i in range(5)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(10)
        assert len(names) == 5
        assert endpoint.most == 2
        # some ran on the threads that delivered them, the others on the workers
        assert any(n == "rpccore-memory-svc" for n in names)
        assert any(n.startswith("rpccore-svc-") for n in names)
        server.stop()
        assert server.wait(5)


def test_wait_after_stop_waits_for_requests_running_on_delivering_threads(
        lends: Lends) -> None:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        server = rpc.serve("svc", [endpoint], workers=2).start()
        caller = threading.Thread(target=lambda: rpc.call(
            {}, "svc", {"method": "hold", "args": {"seconds": 0.5}}, timeout=10))
        caller.start()
        deadline = time.monotonic() + 5
        while endpoint.running < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        server.stop()
        assert not server.wait(0.1)
        assert server.wait(5)
        assert endpoint.running == 0
        caller.join(5)


def test_the_driver_is_told_how_long_the_method_took_in_its_recent_runs(
        lends: Lends) -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        for _ in range(3):
            rpc.call({}, "svc", {"method": "hold", "args": {"seconds": 0.05}}, timeout=5)
        rpc.call({}, "svc", {"method": "where", "args": {}}, timeout=5)
        first_hold, second_hold, third_hold, first_where = lends.expected
        # nothing known before a method's first run, then its running average
        assert first_hold is None and first_where is None
        assert second_hold is not None and 0.04 < second_hold < 1.0
        assert third_hold is not None and 0.04 < third_hold < 1.0



class Cast(Incoming):
    """A cast handed to the server as a leader/follower driver would."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    @property
    def can_reply(self) -> bool:
        return False

    def reply(self, body: bytes) -> None:
        pass

    def release_thread(self, expected: float | None = None) -> bool:
        return True


class GatedSlots:
    """The server's slots, where a worker waits for the test's ``gate``
    before it takes one; delivering threads (``get_nowait``) and the
    server's ``wait`` do not."""

    gate = threading.Event()

    def __init__(self) -> None:
        self._slots: queue.SimpleQueue[None] = queue.SimpleQueue()

    def put(self, item: None) -> None:
        self._slots.put(item)

    def get_nowait(self) -> None:
        return self._slots.get_nowait()

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        if threading.current_thread().name.startswith("rpccore-svc-"):  # a worker
            assert GatedSlots.gate.wait(10)
        return self._slots.get(block, timeout)

    def qsize(self) -> int:
        return self._slots.qsize()


class Log:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.lock = threading.Lock()

    def note(self, ctx: dict[str, Any], value: int) -> None:
        with self.lock:  # held by the test to keep the one slot busy
            self.values.append(value)


def test_a_request_never_overtakes_one_queued_before_it(
        lends: Lends, monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker. Cast 0 holds the slot; 1 and 2 queue, and the worker takes
    # 1 and waits for a slot. 0 finishes, and 3 arrives before the worker
    # has taken the freed slot: 3 must queue behind 1 and 2, not take it.
    GatedSlots.gate.clear()
    monkeypatch.setattr(server_module, "queue", types.SimpleNamespace(
        SimpleQueue=GatedSlots, Empty=queue.Empty))
    with memory_rpc() as rpc:
        log = Log()
        server = rpc.serve("svc", [log], workers=1).start()

        def cast(value: int) -> Cast:
            message = {"method": "note", "args": {"value": value}}
            return Cast(rpc._request("cast", {}, "svc", message, None)[3])

        with log.lock:
            first = threading.Thread(target=server._run_or_queue, args=(cast(0),))
            first.start()  # takes the slot, then waits for log.lock
            assert wait_until(lambda: server._slots.qsize() == 0)  # type: ignore[union-attr]
            server._run_or_queue(cast(1))
            server._run_or_queue(cast(2))
        first.join(5)
        assert log.values == [0] and server._slots.qsize() == 1  # type: ignore[union-attr]
        server._run_or_queue(cast(3))
        GatedSlots.gate.set()
        assert wait_until(lambda: len(log.values) == 4, timeout=5)
        assert log.values == [0, 1, 2, 3]
