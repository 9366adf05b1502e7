"""The zmq driver's EventLoop on its own thread: commands, results, timers,
descriptors, stopping (no network)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rpccore_zmq.eventloop import EventLoop, LoopStopped


def test_commands_and_results_run_on_the_loop_thread() -> None:
    loop = EventLoop("test-loop")
    loop.start_thread()
    try:
        assert loop.run_sync(lambda: threading.current_thread().name, timeout=5) == "test-loop"
        with pytest.raises(KeyError):
            loop.run_sync(lambda: {}["missing"], timeout=5)
        ran = threading.Event()
        loop.submit(ran.set)
        assert ran.wait(5)
    finally:
        loop.stop()
    assert loop.stopped.is_set()
    with pytest.raises(LoopStopped):
        loop.run_sync(lambda: 1, timeout=5)


def test_ticks_wakes_and_the_stop_hook() -> None:
    ticks: list[float] = []
    wakes: list[float] = []
    stopped = threading.Event()
    loop = EventLoop("test-timers", on_tick=ticks.append, on_wake=wakes.append,
                     on_stop=stopped.set)
    loop.start_thread()
    try:
        loop.run_sync(lambda: setattr(loop, "wake_at", time.monotonic() + 0.05), timeout=5)
        time.sleep(0.3)
        assert len(ticks) >= 2 and len(wakes) == 1
    finally:
        loop.stop()
    assert stopped.is_set()


def test_a_readable_descriptor_calls_its_handler_until_it_has_read_all() -> None:
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    got: list[bytes] = []
    done = threading.Event()

    def on_readable() -> bool:
        try:
            got.append(os.read(read_fd, 1))  # one byte a call: more may be waiting
        except BlockingIOError:
            return False
        if b"".join(got) == b"abc":
            done.set()
        return True

    loop = EventLoop("test-fd")
    loop.start_thread()
    try:
        loop.run_sync(lambda: loop.watch(read_fd, on_readable), timeout=5)
        os.write(write_fd, b"abc")
        assert done.wait(5)
        loop.run_sync(lambda: loop.unwatch(read_fd), timeout=5)
    finally:
        loop.stop()
        os.close(read_fd)
        os.close(write_fd)


def test_a_loop_that_never_ran_stops_at_once() -> None:
    stopped = threading.Event()
    loop = EventLoop("test-idle", on_stop=stopped.set)
    start = time.monotonic()
    loop.stop()
    assert stopped.is_set() and time.monotonic() - start < 1
