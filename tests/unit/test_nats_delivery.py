"""The nats driver's Deliverer (:mod:`rpccore_nats.delivery`): what the loop
received in one turn goes to one thread as a batch, in order; a request not
known to be quick gives the rest of its batch to another thread, ahead of
anything received later; closing gives back what was not delivered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rpccore.driver import Incoming
from rpccore_nats.delivery import QUICK, Deliverer


class Message(Incoming):
    """A message whose handling the test drives (``expected``: what the
    server would tell ``release_thread``)."""

    def __init__(self, name: str, deliverer: Deliverer | None = None,
                 expected: float | None = 0.0, hold: threading.Event | None = None,
                 gate: threading.Event | None = None) -> None:
        self.body = name.encode()
        self.name = name
        self.deliverer = deliverer
        self.expected = expected
        self.hold = hold  # waited for after releasing the thread
        self.gate = gate  # waited for before

    @property
    def can_reply(self) -> bool:
        return False

    def reply(self, body: bytes) -> None:
        pass

    def release_thread(self, expected: float | None = None) -> bool:
        assert self.deliverer is not None
        return self.deliverer.release(expected)


class Turns:
    """Stands in for the loop: what ``call_soon`` was given runs at :meth:`end`."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], None]] = []

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.soon.append(callback)

    def end(self) -> None:
        soon, self.soon = self.soon, []
        for callback in soon:
            callback()


class Server:
    """Records which thread started each message; runs it inline (releasing
    the thread first, as a leader/follower server does)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Condition()

    def on_message(self, incoming: Any) -> None:
        with self.lock:
            self.seen.append((incoming.name, threading.current_thread().name + str(
                threading.get_ident())))
            self.lock.notify_all()
        if incoming.gate is not None:
            assert incoming.gate.wait(10)
        incoming.release_thread(incoming.expected)
        if incoming.hold is not None:
            assert incoming.hold.wait(10)

    def wait_for(self, count: int) -> list[tuple[str, str]]:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.seen) >= count, 10), self.seen
            return list(self.seen)


def _deliverer(server: Server, turns: Turns) -> Deliverer:
    return Deliverer(server.on_message, "test", turns.call_soon)


def test_one_turn_is_one_batch_delivered_in_order_on_one_thread() -> None:
    server, turns = Server(), Turns()
    deliverer = _deliverer(server, turns)
    for i in range(50):
        deliverer.put(Message(f"m{i}", deliverer, expected=QUICK / 10))
    assert len(turns.soon) == 1  # one hand-over for the turn, not one per message
    assert deliverer.pending() == 50
    turns.end()
    seen = server.wait_for(50)
    assert [name for name, _ in seen] == [f"m{i}" for i in range(50)]
    assert len({thread for _, thread in seen}) == 1
    assert deliverer.close(1.0) == []


def test_the_rest_of_a_batch_goes_ahead_of_later_ones_when_a_request_may_block() -> None:
    server, turns = Server(), Turns()
    deliverer = _deliverer(server, turns)
    gate, hold = threading.Event(), threading.Event()
    # "a" is not known to be quick; it releases its thread only once a later
    # batch waits in the queue
    first = Message("a", deliverer, expected=None, hold=hold, gate=gate)
    for message in (first, Message("b", deliverer), Message("c", deliverer)):
        deliverer.put(message)
    turns.end()
    server.wait_for(1)
    deliverer.put(Message("d", deliverer))
    turns.end()
    gate.set()
    seen = server.wait_for(4)  # while "a" still runs
    names = [name for name, _ in seen]
    assert names[:2] == ["a", "b"] and set(names[2:]) == {"c", "d"}, names
    threads = dict(seen)
    assert threads["b"] == threads["c"] != threads["a"]  # the rest, on another thread
    hold.set()
    assert deliverer.close(1.0) == []


def test_a_slow_request_keeps_nothing_waiting_behind_it() -> None:
    server, turns = Server(), Turns()
    deliverer = _deliverer(server, turns)
    hold = threading.Event()
    deliverer.put(Message("slow", deliverer, expected=1.0, hold=hold))
    deliverer.put(Message("next", deliverer))
    turns.end()
    assert [name for name, _ in server.wait_for(2)] == ["slow", "next"]
    hold.set()
    deliverer.close(1.0)


def test_closing_gives_back_what_was_not_delivered() -> None:
    server, turns = Server(), Turns()
    deliverer = _deliverer(server, turns)
    hold = threading.Event()
    deliverer.put(Message("busy", deliverer, expected=0.0, hold=hold))  # keeps its thread
    turns.end()
    server.wait_for(1)
    # the only other thread is the one release() started; keep it busy too
    deliverer.put(Message("busy2", deliverer, expected=0.0, hold=hold))
    turns.end()
    server.wait_for(2)
    waiting = [Message("q1", deliverer), Message("q2", deliverer)]
    for message in waiting:
        deliverer.put(message)
    start = time.monotonic()
    left = deliverer.close(0.2)  # not handed over yet: the turn never ended
    assert time.monotonic() - start < 2
    assert [m.name for m in left] == ["q1", "q2"]  # type: ignore[attr-defined]
    hold.set()
