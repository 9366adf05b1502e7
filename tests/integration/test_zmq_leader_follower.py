"""zmq servers run each request on the thread that read it (leader/follower):
another thread of the listener takes over reading, so a method that blocks
holds up neither its own server's other requests (up to ``workers`` at once)
nor the other servers on the port."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from rpccore.destination import Destination
from rpccore.server import Server
from rpccore_zmq.testing import free_port, zmq_rpc

HOST = "127.0.0.1"


class Recorder:
    """Counts how many of its methods run at once, and on which threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()
        self.recorded: list[int] = []

    def hold(self, ctx: dict[str, Any], seconds: float) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(seconds)
        finally:
            with self.lock:
                self.running -= 1
        return "held"

    def where(self, ctx: dict[str, Any]) -> str:
        return threading.current_thread().name

    def record(self, ctx: dict[str, Any], i: int) -> None:
        with self.lock:
            self.recorded.append(i)

    def records(self, ctx: dict[str, Any], count: int) -> list[int]:
        deadline = time.monotonic() + 5
        while len(self.recorded) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            return list(self.recorded)

    def usually_quick(self, ctx: dict[str, Any], seconds: float) -> str:
        """Returns at once, unless told to hold."""
        return self.hold(ctx, seconds) if seconds else threading.current_thread().name


class Pair:
    """A server ``RPC`` listening on ``HOST`` and a client ``RPC``, one port."""

    def __init__(self) -> None:
        port = free_port(HOST)
        self.server = zmq_rpc(port, zmq_bind_address=HOST)
        self.client = zmq_rpc(port)

    def serve(self, endpoint: object, workers: int | None = None) -> tuple[Server, Destination]:
        """Serve ``endpoint`` on a fresh topic; the server and the client's
        destination for it."""
        topic = "lf." + os.urandom(4).hex()
        server = self.server.serve(self.server.make_destination(topic, host=HOST), [endpoint],
                                   workers=workers).start()
        return server, self.client.make_destination(topic, host=HOST)

    def call(self, dest: Destination, method: str, **args: Any) -> Any:
        return self.client.call({}, dest, {"method": method, "args": args}, timeout=10)

    def submit(self, pool: ThreadPoolExecutor, dest: Destination, method: str,
               **args: Any) -> Future[Any]:
        return pool.submit(self.call, dest, method, **args)

    def close(self) -> None:
        self.client.close()
        self.server.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    made = Pair()
    yield made
    made.close()


def _wait_running(recorder: Recorder, count: int) -> None:
    deadline = time.monotonic() + 5
    while recorder.running < count:
        assert time.monotonic() < deadline, "the blocking methods never started"
        time.sleep(0.01)


def test_a_quick_request_runs_on_the_thread_that_read_it(pair: Pair) -> None:
    _, dest = pair.serve(Recorder())
    names = {pair.call(dest, "where") for _ in range(20)}
    # the listener's threads, never the server's worker pool
    assert names and all(name.startswith("rpccore-zmq-server-") for name in names), names


def test_requests_read_in_one_batch_do_not_wait_behind_a_blocking_one(pair: Pair) -> None:
    # A quick workers=0 method that blocks holds the loop while a blocking
    # call and three quick ones queue up on the socket; the loop then reads
    # them in one batch. The thread that runs the blocking one would run the
    # rest after it; the watchman hands them to another thread instead.
    _, dest = pair.serve(Recorder(), workers=4)
    _, gate = pair.serve(Recorder(), workers=0)
    with ThreadPoolExecutor(5) as pool:
        gated = pair.submit(pool, gate, "hold", seconds=0.5)
        time.sleep(0.2)  # the loop is now held
        slow = pair.submit(pool, dest, "hold", seconds=2.0)
        time.sleep(0.05)
        quick = [pair.submit(pool, dest, "where") for _ in range(3)]
        assert gated.result(10) == "held"
        released = time.monotonic()
        for future in quick:
            future.result(10)
        assert time.monotonic() - released < 1.0
        assert slow.result(10) == "held"


def test_blocking_methods_run_side_by_side_up_to_the_workers_and_no_more(pair: Pair) -> None:
    recorder = Recorder()
    _, dest = pair.serve(recorder, workers=3)
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        results = [f.result(10) for f in [pair.submit(pool, dest, "hold", seconds=0.3)
                                          for _ in range(8)]]
    elapsed = time.monotonic() - start
    assert results == ["held"] * 8
    assert recorder.most == 3
    # three waves of at most three: not one after the other (2.4 s)
    assert elapsed < 1.6, elapsed


def test_a_server_whose_methods_block_holds_up_no_other_server_on_the_port(pair: Pair) -> None:
    recorder = Recorder()
    _, slow = pair.serve(recorder, workers=2)
    _, quick = pair.serve(Recorder())
    with ThreadPoolExecutor(4) as pool:
        held = [pair.submit(pool, slow, "hold", seconds=1.5) for _ in range(4)]
        _wait_running(recorder, 2)
        start = time.monotonic()
        for _ in range(5):
            pair.call(quick, "where")
        assert time.monotonic() - start < 0.5
        assert [f.result(10) for f in held] == ["held"] * 4


def test_wait_after_stop_waits_for_a_request_running_on_a_listener_thread(pair: Pair) -> None:
    recorder = Recorder()
    server, dest = pair.serve(recorder)
    with ThreadPoolExecutor(1) as pool:
        held = pair.submit(pool, dest, "hold", seconds=0.8)
        _wait_running(recorder, 1)
        assert all(name.startswith("rpccore-zmq-server-") for name in recorder.threads)
        server.stop()
        assert not server.wait(0.1)  # still running
        assert server.wait(5)
        assert recorder.running == 0
        assert held.result(10) == "held"


def test_a_request_that_blocks_after_quick_runs_holds_up_no_other_server(pair: Pair) -> None:
    recorder = Recorder()
    _, dest = pair.serve(recorder)
    _, other = pair.serve(Recorder())
    for _ in range(10):  # its runs so far were quick
        pair.call(dest, "usually_quick", seconds=0)
    with ThreadPoolExecutor(1) as pool:
        held = pair.submit(pool, dest, "usually_quick", seconds=1.5)
        _wait_running(recorder, 1)
        assert all(name.startswith("rpccore-zmq-server-") for name in recorder.threads)
        start = time.monotonic()
        pair.call(other, "where")  # another thread leads meanwhile
        assert time.monotonic() - start < 0.5
        assert held.result(10) == "held"


def test_a_burst_of_casts_split_between_threads_loses_and_repeats_none(pair: Pair) -> None:
    # The first cast of a method not known to be quick sends the rest of
    # its batch back to the loop, which delivers it on another thread; once
    # the method is known to be quick, a batch stays with its thread.
    recorder = Recorder()
    _, dest = pair.serve(recorder)
    for round_ in range(3):
        for i in range(300):
            pair.client.cast({}, dest, {"method": "record", "args": {"i": round_ * 300 + i}})
        got = pair.call(dest, "records", count=(round_ + 1) * 300)
        assert sorted(got) == list(range((round_ + 1) * 300))


class Starter:
    """Starts another server on the listener from inside a request."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.started: list[Destination] = []

    def maybe_start(self, ctx: dict[str, Any], start: bool) -> str:
        if start:
            _, dest = self.pair.serve(Recorder())
            self.started.append(dest)
        return threading.current_thread().name


def test_a_request_may_start_a_server_on_the_listener_it_runs_on(pair: Pair) -> None:
    # Binding a subscription is a command the loop runs, on another thread
    # than the request that waits for it.
    starter = Starter(pair)
    _, dest = pair.serve(starter)
    for _ in range(10):
        pair.call(dest, "maybe_start", start=False)
    start = time.monotonic()
    assert pair.call(dest, "maybe_start", start=True).startswith("rpccore-zmq-server-")
    assert time.monotonic() - start < 2.0
    assert pair.call(starter.started[0], "where").startswith("rpccore-zmq-server-")
