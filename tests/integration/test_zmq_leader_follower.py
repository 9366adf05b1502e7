"""zmq servers run each request on the thread that read it (leader/follower):
another thread of the listener takes over reading, so a method that blocks
holds up neither its own server's other requests (up to ``workers`` at once)
nor the other servers on the port."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rpccore_zmq.testing import free_port, zmq_rpc

HOST = "127.0.0.1"


class Recorder:
    """Counts how many of its methods run at once, and on which threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

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


def _pair(**server_options: Any) -> tuple[Any, Any]:
    port = free_port(HOST)
    server = zmq_rpc(port, zmq_bind_address=HOST, **server_options)
    client = zmq_rpc(port)
    return server, client


def test_a_quick_request_runs_on_the_thread_that_read_it() -> None:
    server, client = _pair()
    topic = "lf." + os.urandom(4).hex()
    try:
        server.serve(server.make_destination(topic, host=HOST), [Recorder()]).start()
        dest = client.make_destination(topic, host=HOST)
        names = {client.call({}, dest, {"method": "where", "args": {}}, timeout=10)
                 for _ in range(20)}
        # the listener's threads, never the server's worker pool
        assert names and all(name.startswith("rpccore-zmq-server-") for name in names), names
    finally:
        client.close()
        server.close()


def test_requests_read_in_one_batch_do_not_wait_behind_a_blocking_one() -> None:
    # A quick workers=0 method that blocks holds the loop while a blocking
    # call and three quick ones queue up on the socket; the loop then reads
    # them in one batch. The thread that runs the blocking one would run the
    # rest after it; the watchman hands them to another thread instead.
    server, client = _pair()
    topic, gate = "lf." + os.urandom(4).hex(), "lf-gate." + os.urandom(4).hex()
    recorder = Recorder()
    try:
        server.serve(server.make_destination(topic, host=HOST), [recorder], workers=4).start()
        server.serve(server.make_destination(gate, host=HOST), [Recorder()], workers=0).start()
        dest = client.make_destination(topic, host=HOST)
        gate_dest = client.make_destination(gate, host=HOST)
        with ThreadPoolExecutor(5) as pool:
            gated = pool.submit(client.call, {}, gate_dest,
                                {"method": "hold", "args": {"seconds": 0.5}}, timeout=10)
            time.sleep(0.2)  # the loop is now held
            slow = pool.submit(client.call, {}, dest,
                               {"method": "hold", "args": {"seconds": 2.0}}, timeout=10)
            time.sleep(0.05)
            quick = [pool.submit(client.call, {}, dest, {"method": "where", "args": {}},
                                 timeout=10) for _ in range(3)]
            assert gated.result(10) == "held"
            released = time.monotonic()
            for future in quick:
                future.result(10)
            assert time.monotonic() - released < 1.0
            assert slow.result(10) == "held"
    finally:
        client.close()
        server.close()


def test_blocking_methods_run_side_by_side_up_to_the_workers_and_no_more() -> None:
    server, client = _pair()
    topic = "lf." + os.urandom(4).hex()
    recorder = Recorder()
    try:
        server.serve(server.make_destination(topic, host=HOST), [recorder], workers=3).start()
        dest = client.make_destination(topic, host=HOST)
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(
                lambda _: client.call({}, dest, {"method": "hold", "args": {"seconds": 0.3}},
                                      timeout=10), range(8)))
        elapsed = time.monotonic() - start
        assert results == ["held"] * 8
        assert recorder.most == 3
        # three waves of at most three: not one after the other (2.4 s)
        assert elapsed < 1.6, elapsed
    finally:
        client.close()
        server.close()


def test_a_server_whose_methods_block_holds_up_no_other_server_on_the_port() -> None:
    server, client = _pair()
    slow, quick = "lf-slow." + os.urandom(4).hex(), "lf-quick." + os.urandom(4).hex()
    recorder = Recorder()
    try:
        server.serve(server.make_destination(slow, host=HOST), [recorder], workers=2).start()
        server.serve(server.make_destination(quick, host=HOST), [Recorder()]).start()
        slow_dest = client.make_destination(slow, host=HOST)
        quick_dest = client.make_destination(quick, host=HOST)
        with ThreadPoolExecutor(4) as pool:
            held = [pool.submit(client.call, {}, slow_dest,
                                {"method": "hold", "args": {"seconds": 1.5}}, timeout=10)
                    for _ in range(4)]
            deadline = time.monotonic() + 5
            while recorder.running < 2:
                assert time.monotonic() < deadline, "the slow methods never started"
                time.sleep(0.01)
            start = time.monotonic()
            for _ in range(5):
                client.call({}, quick_dest, {"method": "where", "args": {}}, timeout=10)
            assert time.monotonic() - start < 0.5
            assert [f.result(10) for f in held] == ["held"] * 4
    finally:
        client.close()
        server.close()


def test_wait_after_stop_waits_for_a_request_running_on_a_listener_thread() -> None:
    server, client = _pair()
    topic = "lf." + os.urandom(4).hex()
    recorder = Recorder()
    try:
        srv = server.serve(server.make_destination(topic, host=HOST), [recorder]).start()
        dest = client.make_destination(topic, host=HOST)
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(client.call, {}, dest,
                               {"method": "hold", "args": {"seconds": 0.8}}, timeout=10)
            deadline = time.monotonic() + 5
            while recorder.running < 1:
                assert time.monotonic() < deadline, "the method never started"
                time.sleep(0.01)
            assert all(name.startswith("rpccore-zmq-server-") for name in recorder.threads)
            srv.stop()
            assert not srv.wait(0.1)  # still running
            assert srv.wait(5)
            assert recorder.running == 0
            assert held.result(10) == "held"
    finally:
        client.close()
        server.close()
