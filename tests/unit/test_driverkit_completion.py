"""rpccore.driverkit.completion: set once, waited for by any thread."""

from __future__ import annotations

import threading
import time

import pytest

from rpccore.driverkit import Completion


def test_result_set_by_another_thread() -> None:
    done: Completion[int] = Completion()
    threading.Timer(0.05, done.set_result, (42,)).start()
    assert not done.done
    assert done.result(5) == 42
    assert done.done and done.value == 42 and done.error is None


def test_error_is_raised_by_result_not_by_wait() -> None:
    done: Completion[int] = Completion()
    assert done.set_error(KeyError("k"))
    assert done.wait(0)
    with pytest.raises(KeyError):
        done.result()
    assert isinstance(done.error, KeyError) and done.value is None


def test_first_outcome_wins() -> None:
    done: Completion[str] = Completion()
    assert done.set_error(TimeoutError("gave up"))
    assert not done.set_result("late")
    assert not done.set_error(ValueError())
    assert isinstance(done.error, TimeoutError) and done.value is None


def test_timeouts() -> None:
    done: Completion[None] = Completion()
    start = time.monotonic()
    assert not done.wait(0.05)
    assert not done.wait_until(time.monotonic() + 0.05)
    assert not done.wait_until(time.monotonic() - 1)
    assert not done.wait(-1)   # a deadline in the past is no wait, not forever
    assert time.monotonic() - start < 2
    with pytest.raises(TimeoutError):
        done.result(0.01)


def test_every_waiter_wakes_and_waits_again_return_at_once() -> None:
    done: Completion[int] = Completion()
    woken: list[bool] = []
    threads = [threading.Thread(target=lambda: woken.append(done.wait(5))) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.02)
    done.set_result(1)
    for thread in threads:
        thread.join(5)
    assert woken == [True] * 8
    for _ in range(3):
        assert done.wait(0) and done.wait_until(None) and done.result(0) == 1


def test_only_one_of_many_racing_completers_wins() -> None:
    for _ in range(50):
        done: Completion[int] = Completion()
        wins: list[int] = []
        barrier = threading.Barrier(4)

        def complete(i: int, done: Completion[int] = done, wins: list[int] = wins,
                     barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            if done.set_result(i):
                wins.append(i)

        threads = [threading.Thread(target=complete, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(wins) == 1 and done.value == wins[0]


def test_abandoned_it_wakes_waiters_and_ignores_what_comes_later() -> None:
    done: Completion[int] = Completion()
    assert done.abandon()
    assert done.done and done.wait(0)
    assert not done.set_result(1) and not done.set_error(KeyError()) and not done.abandon()
    assert done.value is None and done.error is None
    assert done.result(0) is None
