"""Client connections: for casts one per peer host, for calls one per call
in flight to a host (borrowed from a pool); reused, bounded by zmq_max_peers;
closing never hangs, even with messages queued for a dead peer."""

from __future__ import annotations

import os
import time
from typing import Any

from rpccore.testing import wait_until
from rpccore_zmq import ZmqDriver
from rpccore_zmq.testing import free_port, zmq_rpc

HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def whoami(self, ctx: dict[str, Any]) -> str:
        return self.name


def test_one_reused_connection_per_host_within_the_limit() -> None:
    port = free_port()
    topic = "conn." + os.urandom(4).hex()
    servers = [zmq_rpc(port, zmq_bind_address=host) for host in HOSTS]
    client = zmq_rpc(port, zmq_max_peers=2)
    try:
        for rpc, host in zip(servers, HOSTS, strict=True):
            rpc.serve(rpc.make_destination(topic, host=host), [Named(host)]).start()
        driver = client.cell().driver()
        assert isinstance(driver, ZmqDriver)
        for _ in range(5):
            for host in HOSTS[:2]:
                dest = client.make_destination(topic, host=host)
                assert client.call({}, dest, {"method": "whoami", "args": {}},
                                   timeout=5) == host
        assert driver._client is not None
        # sequential calls: one connection per host, reused
        assert driver._client.calls.pool.idle() == {f"tcp://{h}:{port}": 1 for h in HOSTS[:2]}
        for host in HOSTS[:2]:  # casts: the shared connection per host
            client.cast({}, client.make_destination(topic, host=host),
                        {"method": "whoami", "args": {}})
        shared = driver._client.casts.connections
        assert wait_until(lambda: shared.endpoints() ==
                          [f"tcp://{h}:{port}" for h in HOSTS[:2]])
        # a third host: the least recently used idle connection makes room
        for host in HOSTS:
            dest = client.make_destination(topic, host=host)
            assert client.call({}, dest, {"method": "whoami", "args": {}}, timeout=5) == host
            client.cast({}, dest, {"method": "whoami", "args": {}})
            assert len(shared) <= 2
            assert sum(driver._client.calls.pool.idle().values()) <= 2
        assert f"tcp://{HOSTS[2]}:{port}" in driver._client.calls.pool.idle()
    finally:
        client.close()
        for rpc in servers:
            rpc.close()


def test_close_never_hangs_with_messages_queued_for_a_dead_peer() -> None:
    port = free_port()
    client = zmq_rpc(port)
    dest = client.make_destination("nobody", host="127.0.0.5")  # nothing listens
    for i in range(100):
        client.cast({}, dest, {"method": "m", "args": {"i": i, "pad": "x" * 1000}})
    start = time.monotonic()
    client.close()
    assert time.monotonic() - start < 2


class Slow:
    def wait(self, ctx: dict[str, Any], seconds: float, tag: str) -> str:
        time.sleep(seconds)
        return tag


def test_a_late_reply_never_answers_the_next_call_on_that_connection() -> None:
    import pytest

    from rpccore import Timeout

    port = free_port()
    topic = "late." + os.urandom(4).hex()
    server = zmq_rpc(port, zmq_bind_address=HOSTS[0])
    client = zmq_rpc(port)
    try:
        server.serve(server.make_destination(topic, host=HOSTS[0]), [Slow()]).start()
        dest = client.make_destination(topic, host=HOSTS[0])
        with pytest.raises(Timeout):
            client.call({}, dest, {"method": "wait", "args": {"seconds": 0.5, "tag": "late"}},
                        timeout=0.2)
        driver = client.cell().driver()
        assert isinstance(driver, ZmqDriver) and driver._client is not None
        assert driver._client.calls.pool.idle() == {f"tcp://{HOSTS[0]}:{port}": 1}  # kept
        time.sleep(0.5)  # the late reply is now waiting on that connection
        for i in range(3):
            assert client.call({}, dest, {"method": "wait",
                                          "args": {"seconds": 0, "tag": f"now{i}"}},
                               timeout=5) == f"now{i}"
    finally:
        client.close()
        server.close()


def test_closing_the_driver_ends_a_call_in_flight() -> None:
    import threading

    from rpccore import TransportError

    port = free_port()
    topic = "closing." + os.urandom(4).hex()
    server = zmq_rpc(port, zmq_bind_address=HOSTS[0])
    client = zmq_rpc(port)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.call({}, client.make_destination(topic, host=HOSTS[0]),
                        {"method": "wait", "args": {"seconds": 5, "tag": "x"}}, timeout=30)
        except BaseException as exc:  # recorded for the assertion below
            outcome.append(exc)

    try:
        server.serve(server.make_destination(topic, host=HOSTS[0]), [Slow()]).start()
        caller = threading.Thread(target=call)
        caller.start()
        assert wait_until(lambda: server.cell().stats.get("received") == 1)
        start = time.monotonic()
        client.close()
        caller.join(5)
        assert not caller.is_alive()
        assert time.monotonic() - start < 2
        assert len(outcome) == 1 and isinstance(outcome[0], TransportError), outcome
    finally:
        client.close()
        server.close()


class Log:
    def __init__(self) -> None:
        self.values: list[int] = []

    def note(self, ctx: dict[str, Any], value: int) -> None:
        self.values.append(value)

    def last(self, ctx: dict[str, Any]) -> int | None:
        return self.values[-1] if self.values else None


def test_a_call_after_casts_to_the_same_host_arrives_after_them() -> None:
    # calls use connections of their own: one that follows casts still in
    # flight to its host goes on theirs, so it cannot overtake them
    port = free_port()
    topic = "order." + os.urandom(4).hex()
    server = zmq_rpc(port, zmq_bind_address=HOSTS[0], server_workers=1)
    client = zmq_rpc(port)
    try:
        server.serve(server.make_destination(topic, host=HOSTS[0]), [Log()]).start()
        dest = client.make_destination(topic, host=HOSTS[0])
        for i in range(200):
            client.cast({}, dest, {"method": "note", "args": {"value": i}})
            if i % 10 == 9:
                assert client.call({}, dest, {"method": "last", "args": {}}, timeout=5) == i
    finally:
        client.close()
        server.close()
