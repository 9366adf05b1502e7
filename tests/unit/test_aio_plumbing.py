"""rpccore.aio's plumbing: the loop's inbox and the send threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import Any

import pytest

from rpccore.aio import threads as threads_module
from rpccore.aio.inbox import LoopInbox
from rpccore.aio.threads import SendThreads, in_own_thread, off_loop
from rpccore.errors import TransportError

REQUEST = contextvars.ContextVar("REQUEST", default="none")


@pytest.mark.asyncio
async def test_the_inbox_runs_callbacks_in_order_with_one_wake_up_per_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    wake_ups = 0
    real = loop.call_soon_threadsafe

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal wake_ups
        wake_ups += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    inbox = LoopInbox(loop)
    seen: list[int] = []
    done = asyncio.Event()

    def put_many() -> None:
        for i in range(1000):
            inbox.put(seen.append, i)
        inbox.put(lambda _: done.set(), None)

    thread = threading.Thread(target=put_many)
    thread.start()
    thread.join()  # everything is put while the loop is held up here
    await asyncio.wait_for(done.wait(), 5)
    assert seen == list(range(1000))
    assert wake_ups == 1


@pytest.mark.asyncio
async def test_a_failing_callback_does_not_lose_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    inbox = LoopInbox(asyncio.get_running_loop())
    seen: list[int] = []
    inbox.put(lambda _: 1 / 0, None)
    inbox.put(seen.append, 1)
    await asyncio.sleep(0.01)
    assert seen == [1]
    assert "callback handed to the event loop failed" in caplog.text


def test_the_inbox_of_a_closed_loop_refuses_work() -> None:
    loop = asyncio.new_event_loop()
    inbox = LoopInbox(loop)
    loop.close()
    assert inbox.put(print, "never") is False


def test_jobs_run_in_the_submitters_context_and_in_order() -> None:
    pool = SendThreads(4, busy=1)
    seen: list[tuple[int, str]] = []
    done = threading.Event()
    token = REQUEST.set("req-1")
    try:
        for i in range(50):
            pool.submit(lambda i=i: seen.append((i, REQUEST.get())))
        pool.submit(done.set)
    finally:
        REQUEST.reset(token)
    assert done.wait(5)
    assert seen == [(i, "req-1") for i in range(50)]
    assert pool.threads == 1  # quick jobs: one thread kept up
    pool.close()
    with pytest.raises(TransportError):
        pool.submit(print)


def test_stuck_jobs_do_not_hold_up_the_next_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_module, "STUCK_AFTER", 0.05)
    pool = SendThreads(8, busy=1)
    release = threading.Event()
    ran = threading.Event()
    try:
        for _ in range(3):
            pool.submit(release.wait, 10)  # three stuck sends
        start = time.monotonic()
        pool.submit(ran.set)
        assert ran.wait(5)
        assert time.monotonic() - start < 2.0
        assert pool.threads == 4
    finally:
        release.set()
        pool.close()


def test_the_limit_bounds_threads_even_when_all_are_stuck(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_module, "STUCK_AFTER", 0.02)
    pool = SendThreads(3, busy=1)
    release = threading.Event()
    try:
        for _ in range(6):
            pool.submit(release.wait, 10)
        time.sleep(0.5)
        assert pool.threads == 3
    finally:
        release.set()
        pool.close()
    with pytest.raises(ValueError):
        SendThreads(0)


@pytest.mark.asyncio
async def test_off_loop_returns_results_and_raises_errors_on_the_loop() -> None:
    inbox = LoopInbox(asyncio.get_running_loop())
    pool = SendThreads(2)
    loop_thread = threading.get_ident()
    try:
        assert await off_loop(pool, inbox, threading.get_ident) != loop_thread
        with pytest.raises(ZeroDivisionError):
            await off_loop(pool, inbox, lambda: 1 / 0)
        assert await in_own_thread(inbox, lambda a, b: a + b, 2, 3) == 5
    finally:
        pool.close()
