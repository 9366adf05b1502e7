"""The qpid driver when its broker is killed and restarted, and what is left
on the broker afterwards.

Runs against a private RabbitMQ node with the AMQP 1.0 plugin
(tests/private_rabbit.py), started once for this module, SIGKILLed and
restarted; never the machine's shared broker.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_rabbit import PrivateRabbit
from qpid_suites import delete_idle_queues
from rpccore import RPC
from rpccore.errors import RPCError, Undeliverable
from rpccore.testing import single_cell_rpc, wait_until

RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as rabbit:
        yield rabbit


def _ctl(node: PrivateRabbit, *args: str) -> str:
    done = subprocess.run([RABBITMQCTL, "-n", node.nodename, "-q", *args],
                          env=node._env(), capture_output=True, text=True, timeout=60,
                          check=True)
    return done.stdout


def _rpc(node: PrivateRabbit, namespace: str, **options: Any) -> RPC:
    # the default reconnect options: they must bring a server back within 2 s
    options.setdefault("heartbeat_interval", 5)
    return single_cell_rpc(node.url("qpid"), control_exchange=namespace, **options)


def _eventually(attempt: Any, within: float = 10.0) -> bool:
    """Whether ``attempt()`` returns True (not raising RPCError) within ``within`` s."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            if attempt():
                return True
        except RPCError:
            pass
        time.sleep(0.1)
    return False


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notes: set[int] = set()

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def note(self, ctx: dict[str, Any], value: int) -> None:
        with self.lock:
            self.notes.add(value)


class KeepCalling:
    """Calls ``add`` in a loop; records (when it started, when it ended, how)
    of every call: a call that was in flight when the broker died may still
    have got its reply."""

    def __init__(self, client: RPC, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.outcomes: list[tuple[float, float, str]] = []
        self.slow: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> KeepCalling:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            start = time.monotonic()
            try:
                ok = self.client.call({}, self.topic, {"method": "add", "args": {"a": i, "b": 1}},
                                      timeout=2) == i + 1
                self.outcomes.append((start, time.monotonic(), "ok" if ok else "wrong"))
            except RPCError as exc:
                took = time.monotonic() - start
                self.outcomes.append((start, time.monotonic(), type(exc).__name__))
                if took > 4.5:  # timeout 2 s, plus slack for a loaded machine
                    self.slow.append(f"{type(exc).__name__} after {took:.1f} s")
                time.sleep(0.05)

    def answered_after(self, moment: float) -> bool:
        return any(t > moment and what == "ok" for _, t, what in self.outcomes)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _every_route_works(client: RPC, counter: Counter, topic: str) -> None:
    """Direct calls and fanout casts reach the server again (it re-attaches
    its links one by one: allow it a moment)."""
    direct = client.make_destination(topic, host="h1")
    assert _eventually(lambda: client.call({}, direct, {"method": "add",
                                                        "args": {"a": 3, "b": 4}},
                                           timeout=2) == 7)
    fanout = client.make_destination(topic, fanout=True)

    def fanout_arrives() -> bool:
        client.cast({}, fanout, {"method": "note", "args": {"value": -1}})
        end = time.monotonic() + 1
        while -1 not in counter.notes and time.monotonic() < end:
            time.sleep(0.02)
        return -1 in counter.notes

    assert _eventually(fanout_arrives)


def test_server_and_client_survive_a_broker_crash(node: PrivateRabbit) -> None:
    namespace = f"faults-{os.urandom(4).hex()}"
    server_rpc = _rpc(node, namespace)
    client = _rpc(node, namespace)
    counter = Counter()
    try:
        server_rpc.serve(server_rpc.make_destination("crash", host="h1"), [counter]).start()
        assert client.call({}, "crash", {"method": "add", "args": {"a": 1, "b": 1}},
                           timeout=5) == 2
        calls = KeepCalling(client, "crash").start()
        time.sleep(0.5)
        node.kill()
        killed = time.monotonic()
        time.sleep(1.0)
        restarting = time.monotonic()
        node.restart()
        ready = node.wait_ready(40)
        # calls work again soon after the broker is back, on the same objects
        wait_until(lambda: calls.answered_after(ready), 20, 0.1)
        calls.stop()
        outcomes = calls.outcomes
        assert calls.answered_after(ready), outcomes[-20:]
        resumed = min(t for _, t, what in outcomes if t > ready and what == "ok") - ready
        print(f"calls answered again {resumed:.2f} s after the broker was back")
        assert resumed < 2.0, "the default reconnect options must resume within 2 s"
        assert not calls.slow, calls.slow
        assert "wrong" not in (what for _, _, what in outcomes)
        # calls made while the broker was down (started after the kill,
        # ended before the restart: a call may reconnect and succeed between
        # the restart and wait_ready seeing the broker up)
        during = {what for started, ended, what in outcomes
                  if killed < started and ended < restarting}
        assert during <= {"TransportError", "Timeout", "Undeliverable"}, during
        assert server_rpc.cell().stats.get("reconnects") >= 1
        assert client.cell().stats.get("reconnects") >= 1
        _every_route_works(client, counter, "crash")
    finally:
        client.close()
        server_rpc.close()


def test_heartbeats_notice_a_hung_broker(node: PrivateRabbit) -> None:
    """SIGSTOP keeps the broker's sockets open but silent: only heartbeats
    (idle timeout) can tell. Calls fail typed meanwhile; all recovers after."""
    namespace = f"hang-{os.urandom(4).hex()}"
    server_rpc = _rpc(node, namespace, heartbeat_interval=2, connect_timeout=2)
    client = _rpc(node, namespace, heartbeat_interval=2, connect_timeout=2)
    try:
        server_rpc.serve("hang", [Counter()]).start()
        assert client.call({}, "hang", {"method": "add", "args": {"a": 1, "b": 1}},
                           timeout=5) == 2
        loop = client.cell().driver()._loop
        assert loop is not None
        node.pause()
        try:
            paused = time.monotonic()
            while loop.connected and time.monotonic() - paused < 10:
                time.sleep(0.05)
            noticed = time.monotonic() - paused
            assert not loop.connected
            assert noticed < 6, f"took {noticed:.1f} s to notice"
            start = time.monotonic()
            with pytest.raises(RPCError) as info:
                client.call({}, "hang", {"method": "add", "args": {"a": 1, "b": 1}}, timeout=1)
            assert type(info.value).__name__ in ("TransportError", "Timeout")
            assert time.monotonic() - start < 2
        finally:
            node.resume()
        end = time.monotonic() + 30
        result = None
        while result is None and time.monotonic() < end:
            try:
                result = client.call({}, "hang", {"method": "add", "args": {"a": 2, "b": 2}},
                                     timeout=1)
            except RPCError:
                time.sleep(0.1)
        assert result == 4
        assert client.cell().stats.get("reconnects") >= 1
    finally:
        client.close()
        server_rpc.close()


def test_virtual_hosts_separate_cells(node: PrivateRabbit) -> None:
    """``qpid://.../VHOST`` selects a RabbitMQ virtual host (``vhost:VHOST``
    in the open frame); servers in one are not reachable from another."""
    vhost = f"vh-{os.urandom(3).hex()}"
    _ctl(node, "add_vhost", vhost)
    _ctl(node, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    namespace = f"vhost-{os.urandom(4).hex()}"

    def in_vhost(name: str) -> RPC:
        return single_cell_rpc(node.url("qpid", vhost=name), control_exchange=namespace)

    server, client, stranger = in_vhost(vhost), in_vhost(vhost), in_vhost("")
    try:
        server.serve("vh", [Counter()]).start()
        assert client.call({}, "vh", {"method": "add", "args": {"a": 5, "b": 5}},
                           timeout=5) == 10
        with pytest.raises(Undeliverable):
            stranger.call({}, "vh", {"method": "add", "args": {"a": 5, "b": 5}}, timeout=5)
        assert any(line.startswith("rpccore-qpid.w.")
                   for line in _ctl(node, "list_queues", "-p", vhost, "name").split())
    finally:
        for rpc in (stranger, client, server):
            rpc.close()


def test_reply_and_fanout_queues_do_not_pile_up(node: PrivateRabbit) -> None:
    """With the documented policy (here with a 1 s expiry), the server-named
    fanout queues and the reply queue of closed drivers go away."""
    _ctl(node, "set_policy", "--apply-to", "queues", "rpccore-expire",
         r"^(amq\.gen-|reply_)", '{"expires":1000}')
    namespace = f"leftovers-{os.urandom(4).hex()}"
    server_rpc = _rpc(node, namespace)
    client = _rpc(node, namespace)
    try:
        server_rpc.serve("left", [Counter()]).start()
        assert client.call({}, "left", {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=5) == 3
        names = _ctl(node, "list_queues", "name").split()
        assert any(n.startswith("reply_") for n in names)
        assert any(n.startswith("amq.gen-") for n in names)
    finally:
        client.close()
        server_rpc.close()
    end = time.monotonic() + 20
    left = ["?"]
    while time.monotonic() < end:
        left = [n for n in _ctl(node, "list_queues", "name").split()
                if n.startswith(("reply_", "amq.gen-"))]
        if not left:
            break
        time.sleep(0.5)
    assert not left


def test_failover_to_the_next_host_when_the_first_dies(node: PrivateRabbit) -> None:
    """URL ``private,shared``: both ends start on the private node; when it is
    killed they fail over to the shared broker (only used, never broken) and
    serve there. The private node is restarted afterwards."""
    namespace = f"failover-{os.urandom(4).hex()}"
    url = f"qpid://guest:guest@127.0.0.1:{node.port},guest:guest@127.0.0.1:5672/"
    server_rpc, client = (single_cell_rpc(url, control_exchange=namespace,
                                          reconnect_interval=0.1) for _ in range(2))
    try:
        server_rpc.serve("failover", [Counter()]).start()
        assert client.call({}, "failover", {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=5) == 3
        assert any(n.startswith(f"rpccore-qpid.w.{namespace}")
                   for n in _ctl(node, "list_queues", "name").split())
        node.kill()
        assert _eventually(lambda: client.call({}, "failover", {"method": "add",
                                                                "args": {"a": 2, "b": 2}},
                                               timeout=1) == 4, within=20)
        assert client.cell().stats.get("reconnects") >= 1
        assert server_rpc.cell().stats.get("reconnects") >= 1
    finally:
        client.close()
        server_rpc.close()
        delete_idle_queues({namespace})  # what the failover made on the shared broker
        node.restart()
        node.wait_ready(40)
