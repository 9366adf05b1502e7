"""A rolling upgrade with every server in a process of its own (issue 18).

Two servers of the old API (2.1) run in their own processes; a client in
this process with ``version_cap="auto"`` calls them without pause, at 2.3
whenever ``can_send_version("2.3")`` allows, else at 2.1. Two new servers
(2.3) start, then the old ones stop one by one, in order. What is asserted:

- while any old server runs the cap stays 2.1, and no 2.3 call is sent
  before the last old server began to stop;
- once it has stopped the cap rises to 2.3 by itself (background discovery),
  and 2.3 calls reach the new servers;
- no call fails meanwhile, and no server ever got a version it cannot serve
  (every answer names a server whose version serves the call's).

Over rabbit (the machine's broker, a control exchange of its own) and zmq
(loopback hosts, one free port, the machine's Redis as matchmaker, a cell of
its own name).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import amqp
import pytest
import redis

from process_peers import ServerProcess, wait_all_ready
from rpccore import RPC, RPCError
from rpccore.client import Client
from rpccore.testing import single_cell_rpc
from rpccore_zmq.testing import free_port

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
REDIS_URL = "redis://127.0.0.1:6379/0"
OLD, NEW = "process_peers:Compute", "process_peers:ComputeV23"
#: the client's discovery: quick, so the test is (the defaults are 0.5 and 60 s)
DISCOVERY = {"version_cap_cache_seconds": 0.5, "version_discovery_window": 0.5}


@dataclass
class Deployment:
    """Where servers and the client of one driver meet."""

    url: str
    cell: str
    options: dict[str, Any]
    old_hosts: list[str]
    new_hosts: list[str]

    #: the option that binds a server to its host's address (zmq), if any
    bind_option: str | None = None

    def servers(self, hosts: list[str], endpoint: str) -> list[ServerProcess]:
        """A server process per host, each answering with its host's name."""
        return wait_all_ready([
            ServerProcess(self.url, "compute", host, [(endpoint, {"host": host})], self.cell,
                          **self.options, **({self.bind_option: host} if self.bind_option
                                             else {}))
            for host in hosts])

    def client_rpc(self) -> RPC:
        return single_cell_rpc(self.url, cell=self.cell, **self.options, **DISCOVERY)


@pytest.fixture(params=["rabbit", "zmq"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    tag = os.urandom(4).hex()
    if request.param == "zmq":
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()  # fails loudly when down
        yield Deployment("zmq://", f"upgrade-{tag}",
                         {"zmq_port": free_port(), "matchmaker": "redis",
                          "matchmaker_url": REDIS_URL},
                         ["127.0.0.2", "127.0.0.3"], ["127.0.0.4", "127.0.0.5"],
                         bind_option="zmq_bind_address")
        return
    exchange = f"upgrade-{tag}"
    yield Deployment(RABBIT_URL, "default", {"control_exchange": exchange},
                     ["old-1", "old-2"], ["new-1", "new-2"])
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        conn.channel().exchange_delete(exchange)


@dataclass
class Traffic:
    """Calls without pause: at 2.3 when the client may send it, else at 2.1."""

    client: Client
    calls: list[tuple[float, str, dict[str, str]]] = field(default_factory=list)
    errors: list[tuple[str, RPCError]] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        v21, v23 = self.client.prepare(version="2.1"), self.client.prepare(version="2.3")
        while not self.done.is_set():
            started = time.monotonic()
            version = "2.3" if self.client.can_send_version("2.3") else "2.1"
            try:
                answer = (v23.call({}, "resize", flavor="m1") if version == "2.3"
                          else v21.call({}, "reboot"))
            except RPCError as exc:
                self.errors.append((version, exc))
            else:
                self.calls.append((started, version, answer))
            time.sleep(0.01)

    def answered_by(self, hosts: list[str], version: str) -> int:
        return sum(1 for _, sent, answer in self.calls
                   if sent == version and answer["host"] in hosts)


def wait_for(what: str, predicate: Any, timeout: float) -> float:
    """Wait until ``predicate()``; return when it became true."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"{what} did not happen within {timeout} s"
        time.sleep(0.02)
    return time.monotonic()


def test_the_auto_cap_rises_after_the_last_old_server_process_stops(
        deployment: Deployment) -> None:
    procs: list[ServerProcess] = []
    rpc = deployment.client_rpc()
    caller: threading.Thread | None = None
    try:
        old = deployment.servers(deployment.old_hosts, OLD)
        procs += old
        client = rpc.client(rpc.make_destination("compute"), version_cap="auto",
                            namespace="compute", timeout=10)
        assert client.can_send_version("2.1")
        assert not client.can_send_version("2.3")
        traffic = Traffic(client)
        caller = threading.Thread(target=traffic.run, daemon=True)
        caller.start()
        wait_for("old servers answering",
                 lambda: traffic.answered_by(deployment.old_hosts, "2.1") >= 5, 10)

        procs += deployment.servers(deployment.new_hosts, NEW)
        wait_for("new servers answering at 2.1",
                 lambda: traffic.answered_by(deployment.new_hosts, "2.1") >= 3, 10)

        old[0].stop()
        # several discoveries later the cap is still 2.1: one old server runs
        end = time.monotonic() + 2 * sum(DISCOVERY.values()) + 0.5
        while time.monotonic() < end:
            assert not client.can_send_version("2.3"), "the cap rose with an old server left"
            time.sleep(0.05)

        last_stop = time.monotonic()
        old[1].stop()
        rose = wait_for("the cap rising to 2.3", lambda: client.can_send_version("2.3"), 10)
        wait_for("2.3 calls answered",
                 lambda: traffic.answered_by(deployment.new_hosts, "2.3") >= 5, 10)
    finally:
        if caller is not None:
            traffic.done.set()
            caller.join(15)
        rpc.close()
        for proc in procs:
            proc.close()

    assert not traffic.errors, traffic.errors[:3]
    served = {h: "2.1" for h in deployment.old_hosts} | {h: "2.3" for h in deployment.new_hosts}
    for _, sent, answer in traffic.calls:
        assert answer["host"] in served and answer["version"] == served[answer["host"]]
        assert sent == "2.1" or answer["version"] == "2.3", (sent, answer)
    first_23 = min(started for started, sent, _ in traffic.calls if sent == "2.3")
    assert first_23 > last_stop, "a 2.3 call was sent while an old server still ran"
    assert rose - last_stop < 2 * sum(DISCOVERY.values()) + 5.0
