"""zmq servers in separate processes, and what happens when one is SIGKILLed.

Two server processes serve one topic as hosts 127.0.0.2 and 127.0.0.3 (each
bound to its own address, one free port); the client in this process finds
them through the redis matchmaker on the machine's Redis, in a cell of its own
name. What is asserted is what drivers/zmq/README.md promises:

- work is shared between the processes, host-directed messages reach their
  host, a fanout reaches both;
- after a SIGKILL: a call to the dead host raises TransportError or Timeout
  within its deadline; topic casts reach the surviving host, every one of
  them; a host-directed cast to the dead host is reported (counted, logged,
  and the next cast to that host raises TransportError); a confirmed one
  raises at once.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import pytest
import redis

from rpccore import RPC, Timeout, TransportError
from rpccore.testing import wait_until
from rpccore_zmq.testing import free_port, zmq_rpc

REDIS_URL = "redis://127.0.0.1:6379/0"
HOSTS = ("127.0.0.2", "127.0.0.3")
RECEIPT_TIMEOUT = 0.5


class Tally:
    """Counts what it was cast, answers who it is."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.values: list[int] = []
        self.lock = threading.Lock()

    def whoami(self, ctx: dict[str, Any]) -> str:
        return self.host

    def note(self, ctx: dict[str, Any], value: int) -> None:
        with self.lock:
            self.values.append(value)

    def noted(self, ctx: dict[str, Any]) -> list[int]:
        with self.lock:
            return list(self.values)


def cell_options(cell: str) -> dict[str, Any]:
    return {"cell": cell, "matchmaker": "redis", "matchmaker_url": REDIS_URL,
            "zmq_receipt_timeout": RECEIPT_TIMEOUT, "zmq_heartbeat_interval": 0.5,
            "zmq_lookup_cache_ttl": 0.2}


def serve_in_child(port: int, host: str, topic: str, cell: str, conn: Connection) -> None:
    """A server process: serve until told to stop (or killed)."""
    rpc = zmq_rpc(port, zmq_bind_address=host, **cell_options(cell))
    server = rpc.serve(rpc.make_destination(topic, host=host), [Tally(host)]).start()
    conn.send("ready")
    conn.recv()
    server.stop()
    rpc.close()


class ServerProcess:
    def __init__(self, port: int, host: str, topic: str, cell: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.host = host
        self.process = ctx.Process(target=serve_in_child, args=(port, host, topic, cell, child),
                                   daemon=True)
        self.process.start()
        if not self.conn.poll(30) or self.conn.recv() != "ready":
            raise RuntimeError(f"server process for {host} did not start")

    def kill(self) -> None:
        assert self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(10)

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send("stop")
            except OSError:
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.kill()


@pytest.fixture
def cluster() -> Iterator[tuple[RPC, str, list[ServerProcess]]]:
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()  # fail loudly if missing
    port = free_port()
    cell = "zmq-proc-" + os.urandom(4).hex()
    topic = "tally." + os.urandom(4).hex()
    servers: list[ServerProcess] = []
    client = zmq_rpc(port, **cell_options(cell))
    try:
        for host in HOSTS:
            servers.append(ServerProcess(port, host, topic, cell))
        yield client, topic, servers
    finally:
        client.close()
        for server in servers:
            server.stop()


def ask(client: RPC, topic: str, host: str | None, method: str, **args: Any) -> Any:
    dest = client.make_destination(topic, host=host)
    return client.call({}, dest, {"method": method, "args": args}, timeout=10)


def test_servers_in_other_processes_share_work_and_take_direct_and_fanout(
        cluster: tuple[RPC, str, list[ServerProcess]]) -> None:
    client, topic, _ = cluster
    answered = {ask(client, topic, None, "whoami") for _ in range(20)}
    assert answered == set(HOSTS)
    for host in HOSTS:
        assert all(ask(client, topic, host, "whoami") == host for _ in range(5))
    client.cast({}, client.make_destination(topic, fanout=True),
                {"method": "note", "args": {"value": 99}})
    for host in HOSTS:
        assert wait_until(lambda h=host: 99 in ask(client, topic, h, "noted"))


def test_dead_host_calls_fail_in_time_and_topic_casts_reach_the_survivor(
        cluster: tuple[RPC, str, list[ServerProcess]]) -> None:
    client, topic, servers = cluster
    dead, alive = servers
    ask(client, topic, dead.host, "whoami")  # the client is connected to both
    ask(client, topic, alive.host, "whoami")
    dead.kill()

    # a call to the dead host raises within its deadline
    start = time.monotonic()
    with pytest.raises((TransportError, Timeout)):
        client.call({}, client.make_destination(topic, host=dead.host),
                    {"method": "whoami", "args": {}}, timeout=3)
    assert time.monotonic() - start < 3.5

    # topic casts: every one reaches the survivor, though the matchmaker
    # still lists the dead host until its registration expires
    for value in range(40):
        client.cast({}, topic, {"method": "note", "args": {"value": value}})
    assert wait_until(lambda: set(range(40)) <= set(ask(client, topic, alive.host, "noted")))

    # topic calls go to the survivor too
    assert {ask(client, topic, None, "whoami") for _ in range(10)} == {alive.host}


def test_cast_to_a_dead_host_is_reported(
        cluster: tuple[RPC, str, list[ServerProcess]]) -> None:
    client, topic, servers = cluster
    dead = servers[0]
    direct = client.make_destination(topic, host=dead.host)
    client.cast({}, direct, {"method": "note", "args": {"value": 1}})
    ask(client, topic, dead.host, "noted")  # it went through
    dead.kill()
    stats = client.cell().stats
    client.cast({}, direct, {"method": "note", "args": {"value": 2}})  # lost
    assert wait_until(lambda: stats.get("zmq_lost_casts") == 1)
    # the loss reported, or (when the missing receipt already marked the
    # host dead, as on a loaded machine) the host refused as not answering
    with pytest.raises(TransportError, match="lost|not answering"):
        client.cast({}, direct, {"method": "note", "args": {"value": 3}})
    with pytest.raises(TransportError):  # known dead: refused at once
        client.cast({}, direct, {"method": "note", "args": {"value": 4}})
    start = time.monotonic()
    with pytest.raises(TransportError):
        client.cast({}, direct, {"method": "note", "args": {"value": 5}}, confirm=True)
    assert time.monotonic() - start < 2 * RECEIPT_TIMEOUT + 1


def test_registrations_follow_servers(cluster: tuple[RPC, str, list[ServerProcess]]) -> None:
    client, topic, servers = cluster
    driver = client.cell().driver()
    matchmaker = driver._registry.matchmaker()  # type: ignore[attr-defined]
    assert sorted(matchmaker.lookup(topic)) == sorted(HOSTS)
    servers[0].stop()  # a clean stop unregisters at once
    assert matchmaker.lookup(topic) == [HOSTS[1]]
    assert {ask(client, topic, None, "whoami") for _ in range(6)} == {HOSTS[1]}
