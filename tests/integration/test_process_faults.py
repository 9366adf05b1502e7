"""Peers that die: a server killed with SIGKILL in the middle of work, and a
client killed while it waits for a reply, on the brokered drivers.

At-least-once for casts on rabbit and qpid: a server acknowledges a message
only after running it, so what a killed server had taken but not finished is
redelivered to another server of the topic.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import rpccore
from process_peers import finished, start_caller, start_server
from rpccore.testing import single_cell_rpc

URLS = {
    "rabbit": "rabbit://guest:guest@127.0.0.1:5672/",
    "qpid": "qpid://guest:guest@127.0.0.1:5672/",
}


def client_for(url: str, exchange: str) -> rpccore.RPC:
    return single_cell_rpc(url, control_exchange=exchange)


def kill(proc: Any) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


@pytest.mark.parametrize("driver", sorted(URLS))
def test_server_killed_mid_work(driver: str, tmp_path: Path) -> None:
    url, exchange = URLS[driver], f"faults-{os.urandom(4).hex()}"
    opts = {"control_exchange": exchange, "server_workers": 1}
    first_log, second_log = str(tmp_path / "first"), str(tmp_path / "second")
    first = start_server(url, "work", "first", first_log, **opts)
    second = start_server(url, "work", "second", second_log, **opts)
    client = client_for(url, exchange)
    try:
        # A call that the dying server holds: Timeout within its deadline, no hang.
        outcome: dict[str, Any] = {}

        def doomed_call() -> None:
            start = time.monotonic()
            try:
                client.call({}, client.make_destination("work", host="first"),
                            {"method": "work", "args": {"n": -1, "seconds": 30}}, timeout=3)
            except rpccore.RPCError as exc:
                outcome["error"] = exc
            outcome["elapsed"] = time.monotonic() - start

        caller = threading.Thread(target=doomed_call)
        caller.start()
        for n in range(40):
            client.cast({}, "work", {"method": "work", "args": {"n": n, "seconds": 0.05}},
                        confirm=True)
        time.sleep(0.3)
        kill(first)
        caller.join(10)
        assert isinstance(outcome.get("error"), (rpccore.Timeout, rpccore.TransportError))
        assert outcome["elapsed"] < 3.5
        # every confirmed cast runs at least once; the killed server's share goes to the other
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = set(finished(first_log)) | set(finished(second_log))
            if set(range(40)) <= done:
                break
            time.sleep(0.1)
        done = set(finished(first_log)) | set(finished(second_log))
        assert set(range(40)) <= done, sorted(set(range(40)) - done)
        assert finished(second_log), "the surviving server took over nothing"
    finally:
        kill(first)
        kill(second)
        client.close()


class Slow:
    def __init__(self) -> None:
        self.finished = threading.Event()

    def work(self, ctx: dict[str, Any], n: int, seconds: float = 0.0) -> int:
        time.sleep(seconds)
        self.finished.set()
        return n


@pytest.mark.parametrize("driver", sorted(URLS))
def test_client_killed_while_waiting(driver: str) -> None:
    url, exchange = URLS[driver], f"orphans-{os.urandom(4).hex()}"
    server_rpc = client_for(url, exchange)
    endpoint = Slow()
    server = server_rpc.serve(server_rpc.make_destination("work", host="h"), [endpoint]).start()
    threads_before = threading.active_count()
    caller = start_caller(url, "work", "h", {"n": 1, "seconds": 1.0}, control_exchange=exchange)
    try:
        stats = server_rpc.cell().stats
        deadline = time.monotonic() + 10
        while stats.get("received") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stats.get("received") == 1, "the caller's request never arrived"
        kill(caller)  # while the server is still working on its request
        assert endpoint.finished.wait(10)
        # the orphan reply is dropped; the server keeps serving
        client = client_for(url, exchange)
        try:
            assert client.call({}, client.make_destination("work", host="h"),
                               {"method": "work", "args": {"n": 2}}, timeout=10) == 2
        finally:
            client.close()
        assert server.running
        assert threading.active_count() <= threads_before + 1
        assert server_rpc.cell().stats.get("received") == 2
    finally:
        kill(caller)
        server_rpc.close()
