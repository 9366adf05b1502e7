"""The rabbit driver on a private 3-node RabbitMQ cluster (tests/private_cluster.py,
PrivateCluster): quorum work queues, clients that list every node in their
transport_url, and nodes that die or hang under load.

What is asserted:

- the node the clients are connected to (and the queue's leader) is
  SIGKILLed while 4 threads send 5,000 confirmed casts: none is lost
  (duplicates are allowed and counted); the server and a caller fail over to
  the other nodes and resume within 2 s;
- the queue's leader alone is killed (clients on other nodes): the same;
- the clients' node is paused (SIGSTOP): heartbeats notice it, the clients
  fail over and resume;
- throughout, every call returns by its deadline (timeout + 0.5 s).

The figures (lost, duplicates, resume times) are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_cluster import PrivateCluster
from private_rabbit import PrivateRabbit
from rabbit_traffic import Caller, Casts, Sink
from rpccore import RPC
from rpccore.testing import single_cell_rpc
from rpccore_rabbit import addressing

TOPIC = "cluster.work"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with PrivateCluster() as nodes:
        yield nodes


def _rpc(url: str, exchange: str, **options: Any) -> RPC:
    options.setdefault("heartbeat_interval", 1)
    options.setdefault("connect_timeout", 1)
    return single_cell_rpc(url, control_exchange=exchange, rabbit_queue_type="quorum", **options)


def _url(nodes: list[PrivateRabbit]) -> str:
    return f"rabbit://{','.join(node.address() for node in nodes)}/"


class Scene:
    """A server, a casting client and a caller, all on ``url``; the work
    queue is declared first through ``leader`` (the node then leads it)."""

    def __init__(self, url: str, leader: PrivateRabbit) -> None:
        self.exchange = f"cluster-{os.urandom(4).hex()}"
        declarer = _rpc(_url([leader]), self.exchange)
        declarer.serve(declarer.make_destination(TOPIC), [Sink()]).start()
        declarer.close()
        self.sink = Sink()
        self.server = _rpc(url, self.exchange)
        self.client = _rpc(url, self.exchange)
        self.caller_rpc = _rpc(url, self.exchange)
        self.server.serve(self.server.make_destination(TOPIC, host="h1"), [self.sink]).start()
        assert self.caller_rpc.call({}, TOPIC, {"method": "add", "args": {"a": 1, "b": 1}},
                                    timeout=10) == 2
        self.queue = addressing.queue_name(self.exchange, addressing.work_key(TOPIC))
        self.casts = Casts(self.client, TOPIC)
        self.caller = Caller(self.caller_rpc, TOPIC)

    def start_load(self, before_fault: int = 1500) -> None:
        self.casts.start()
        self.caller.start()
        end = time.monotonic() + 60
        while self.casts.count() < before_fault and time.monotonic() < end:
            time.sleep(0.01)
        assert self.casts.count() >= before_fault, "the casts did not get going"

    def finish(self, fault_at: float, label: str, reconnect: bool = True) -> dict[str, Any]:
        """Wait for the load to end; check and return the figures."""
        assert self.casts.join(120), "casts still running after 120 s"
        missing = self.sink.wait_for(self.casts.confirmed, 60)
        self.caller.stop()
        server_resumed = self.sink.first_after(fault_at)
        caller_resumed = self.caller.first_success_after(fault_at)
        figures = {
            "confirmed": len(self.casts.confirmed), "failed": len(self.casts.failed),
            "lost": len(missing), "duplicates": self.sink.duplicates(),
            "server resumed after s": None if server_resumed is None
            else round(server_resumed - fault_at, 3),
            "caller resumed after s": None if caller_resumed is None
            else round(caller_resumed - fault_at, 3),
            # the outage as each saw it: the longest time without a delivery
            # (server) or a successful call (caller) since the fault
            "server gap s": round(self.sink.longest_gap(fault_at), 3),
            "caller gap s": round(self.caller.longest_gap(fault_at), 3),
            "calls": len(self.caller.calls), "late calls": len(self.caller.late())}
        print(f"\n{label}: {figures}")
        assert not missing, f"{len(missing)} confirmed casts lost, e.g. {sorted(missing)[:5]}"
        assert figures["confirmed"] + figures["failed"] == 5000
        assert figures["confirmed"] >= 4900, figures
        assert not self.caller.late(), self.caller.late()[:5]
        if reconnect:
            for rpc in (self.server, self.client, self.caller_rpc):
                assert rpc.stats()[rpc.default_cell]["reconnects"] >= 1, label
        return figures

    def close(self) -> None:
        self.caller.stop()
        for rpc in (self.client, self.caller_rpc, self.server):
            rpc.close()


def _restart(node: PrivateRabbit) -> threading.Thread:
    """Restart ``node`` in the background (it rejoins the cluster by itself)."""
    thread = threading.Thread(target=lambda: (node.restart(), node.wait_ready(90)), daemon=True)
    thread.start()
    return thread


def _all_running(cluster: PrivateCluster, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    for node in cluster.nodes:
        if not node.accepts_connections():
            node.wait_ready(max(1.0, end - time.monotonic()))
    running = ""
    while time.monotonic() < end:
        running = cluster.nodes[0].rabbitmqctl("eval", "length(rabbit_nodes:all_running()).")
        if running.strip() == str(len(cluster.nodes)):
            return
        time.sleep(0.5)
    raise TimeoutError(f"cluster runs {running.strip()} nodes")


def test_killing_the_clients_node_loses_no_confirmed_cast(cluster: PrivateCluster) -> None:
    first, second, third = cluster.nodes
    scene = Scene(cluster.url(), leader=third)   # clients on node 1, leader on node 3
    restart = None
    try:
        scene.start_load()
        killed = time.monotonic()
        first.kill()
        restart = _restart(first)
        figures = scene.finish(killed, "clients' node SIGKILLed")
        assert figures["server gap s"] < 2.0, figures
        assert figures["caller gap s"] < 2.0, figures
    finally:
        scene.close()
        if restart is not None:
            restart.join(90)


def test_killing_the_queue_leader_loses_no_confirmed_cast(cluster: PrivateCluster) -> None:
    _all_running(cluster)
    first, second, third = cluster.nodes
    scene = Scene(_url([second, third]), leader=first)   # clients elsewhere
    restart = None
    try:
        assert cluster.leader_of(scene.queue) is first
        scene.start_load()
        killed = time.monotonic()
        first.kill()
        restart = _restart(first)
        figures = scene.finish(killed, "queue leader SIGKILLed (clients elsewhere)",
                               reconnect=False)
        assert figures["server gap s"] < 2.0, figures
        assert figures["caller gap s"] < 2.0, figures
    finally:
        scene.close()
        if restart is not None:
            restart.join(90)


def test_a_paused_node_is_noticed_by_heartbeats(cluster: PrivateCluster) -> None:
    _all_running(cluster)
    first, second, third = cluster.nodes
    scene = Scene(cluster.url(), leader=second)
    try:
        scene.start_load()
        link = scene.server.cell().driver().link  # type: ignore[attr-defined]
        paused_at = time.monotonic()
        first.pause()
        end = paused_at + 10
        while link.ready.is_set() and time.monotonic() < end:
            time.sleep(0.01)
        noticed = time.monotonic() - paused_at
        print(f"\nheartbeats (1 s) noticed the paused node after {noticed:.2f} s")
        assert noticed < 4.0, "heartbeats did not notice the paused node"
        figures = scene.finish(paused_at, "clients' node paused (SIGSTOP)")
        assert figures["server resumed after s"] is not None
        assert figures["caller resumed after s"] is not None
    finally:
        scene.close()
        first.kill()  # SIGSTOPped: the rest of the module does not need it back
