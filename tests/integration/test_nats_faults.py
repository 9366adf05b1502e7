"""The nats driver on a private 3-node NATS cluster whose node a client is
connected to is SIGKILLed while calls and confirmed casts run.

What must hold (issue 24): callers keep their deadlines, nothing confirmed
is lost (streams have 3 replicas; servers acknowledge after running), and
traffic resumes within 2 s. With one stream of confirmed casts
(``nats_cast_streams = 1``, the default) confirmed casts resume only once
JetStream has elected a new leader when the killed node led their stream;
with two they fail over to the other stream (:mod:`rpccore_nats.standby`).
The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_nats import PrivateNatsCluster
from rpccore import RPC
from rpccore.errors import RPCError
from rpccore.testing import single_cell_rpc
from rpccore_nats.naming import Subjects

CALL_TIMEOUT = 2.0
CAST_TIMEOUT = 8.0
RUN_AFTER_KILL = 6.0
#: How long a new confirmed cast is probed for after the kill, and the bound
#: on it with one stream whose leader was killed: nats-server's raft election
#: (4.3-8.6 s measured with 2.9.10 on a quiet machine, 22.9 s once in a CI
#: run beside the other tests); ours are the 2 s bounds.
ELECTION_BOUND = 45.0


class Sink:
    """Remembers every value cast to it."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.lock = threading.Condition()

    def note(self, ctx: dict[str, Any], value: str) -> None:
        with self.lock:
            self.values.add(value)
            self.lock.notify_all()

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def missing(self, wanted: set[str], timeout: float) -> set[str]:
        end = time.monotonic() + timeout
        with self.lock:
            while (missing := wanted - self.values) and time.monotonic() < end:
                self.lock.wait(0.2)
            return missing


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateNatsCluster]:
    with PrivateNatsCluster(3) as made:
        yield made


def _rpc(cluster: PrivateNatsCluster, order: list[int], exchange: str, cell: str,
         **options: Any) -> RPC:
    return single_cell_rpc(cluster.url(order), cell=cell, control_exchange=exchange,
                           nats_randomize_servers=False, nats_stream_replicas=3, nats_ack_wait=2,
                           nats_reconnect_wait=0.2, nats_reconnect_jitter=0.05, **options)


class Traffic:
    """Calls from two threads and confirmed casts from one, until stopped;
    every outcome with its start and end."""

    def __init__(self, client: RPC, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.calls: list[tuple[float, float, str]] = []
        self.casts: list[tuple[float, float, str, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._call) for _ in range(2)]
        self.threads.append(threading.Thread(target=self._cast))
        for thread in self.threads:
            thread.start()

    def _call(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                ok = self.client.call({}, self.topic, {"method": "add", "args": {"a": 1, "b": 2}},
                                      timeout=CALL_TIMEOUT) == 3
                outcome = "ok" if ok else "wrong"
            except RPCError as exc:
                outcome = type(exc).__name__
                time.sleep(0.02)
            self.calls.append((start, time.monotonic(), outcome))

    def _cast(self) -> None:
        i = 0
        while not self.stop.is_set():
            value = f"cast-{i}"
            i += 1
            start = time.monotonic()
            try:
                self.client.cast({}, self.topic, {"method": "note", "args": {"value": value}},
                                 confirm=True)
                outcome = "ok"
            except RPCError as exc:
                outcome = type(exc).__name__
                time.sleep(0.02)
            self.casts.append((start, time.monotonic(), value, outcome))

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(CAST_TIMEOUT + 5)


def probe(moment: float, attempt: Any, timeout: float = 10.0) -> float | None:
    """Seconds from ``moment`` until ``attempt()`` (tried again and again,
    each try bounded by its own short deadline) first succeeded."""
    end = moment + timeout
    while time.monotonic() < end:
        try:
            attempt()
            return time.monotonic() - moment
        except RPCError:
            time.sleep(0.01)
    return None


def cast_stream_leaders(cluster: PrivateNatsCluster, exchange: str, streams: int,
                        timeout: float = ELECTION_BOUND) -> list[int]:
    """The nodes leading the exchange's confirmed-cast streams, once every
    stream has a leader and (several streams) no two share one: the
    servers' :func:`rpccore_nats.standby.keep_spread` moves them apart."""
    names = [Subjects(exchange).cast_stream_name(k) for k in range(streams)]
    end = time.monotonic() + timeout
    while True:
        found = cluster.stream_leaders()
        leaders = [found.get(name) for name in names]
        if None not in leaders and len(set(leaders)) == streams:
            return [int(str(leader)[1:]) for leader in leaders]
        assert time.monotonic() < end, f"cast stream leaders not apart: {leaders}"
        time.sleep(0.1)


def run_kill(cluster: PrivateNatsCluster, victim: str, streams: int = 1) -> dict[str, Any]:
    """Servers, a client (and a probe) and traffic, with ``streams`` streams of
    confirmed casts; SIGKILL the client's node, which leads the (first) cast
    stream for ``victim == "leader"`` and none otherwise. Returns what was seen."""
    exchange = f"faults-{os.urandom(4).hex()}"
    cell = f"fault-client-{os.urandom(3).hex()}"
    topic = "faults.kill"
    sink = Sink()
    servers = [_rpc(cluster, order, exchange, "server", nats_cast_streams=streams)
               for order in ([1, 2, 0], [2, 1, 0])]
    rpcs = list(servers)
    try:
        for host, rpc in zip(("h1", "h2"), servers, strict=True):
            rpc.serve(rpc.make_destination(topic, host=host), [sink]).start()
        # the client connects first to the node to be killed: the leader of
        # the stream it publishes to first, or a node that leads none
        leaders = cast_stream_leaders(cluster, exchange, streams)
        first = (leaders[0] if victim == "leader"
                 else next(i for i in (0, 1, 2) if i not in leaders))
        order = [first] + [i for i in (0, 1, 2) if i != first]
        client = _rpc(cluster, order, exchange, cell, rpc_response_timeout=CAST_TIMEOUT,
                      nats_cast_streams=streams)
        probe_client = _rpc(cluster, order, exchange, cell + "-probe", rpc_response_timeout=0.5,
                            nats_cast_streams=streams)
        rpcs += [client, probe_client]
        for rpc in (client, probe_client):
            assert rpc.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                            timeout=10) == 3
            rpc.cast({}, topic, {"method": "note", "args": {"value": "warm"}}, confirm=True)
        node = cluster.node_of(cell)
        leaders = cluster.stream_leaders()
        traffic = Traffic(client, topic)
        time.sleep(1.5)
        killed_at = time.monotonic()
        cluster.kill(node)
        # how soon calls and confirmed casts started after the kill succeed
        # (the traffic threads are held by the requests the kill caught)
        call_resume = probe(killed_at, lambda: probe_client.call(
            {}, topic, {"method": "add", "args": {"a": 1, "b": 1}}, timeout=0.5))
        cast_start = time.monotonic()
        note = {"method": "note", "args": {"value": "probe"}}
        cast_resume = probe(cast_start, lambda: probe_client.cast({}, topic, note, confirm=True),
                            ELECTION_BOUND)
        if cast_resume is not None:
            cast_resume += cast_start - killed_at
        time.sleep(max(0.0, killed_at + RUN_AFTER_KILL - time.monotonic()))
        traffic.finish()
        confirmed = {value for _, _, value, outcome in traffic.casts if outcome == "ok"}
        seen = {
            "node": node, "leaders": leaders, "calls": traffic.calls, "casts": traffic.casts,
            "call_resume": call_resume, "cast_resume": cast_resume, "confirmed": confirmed,
            "missing": sink.missing(confirmed, 30)}
        report(victim, seen)
        return seen
    finally:
        for rpc in rpcs:
            rpc.close()
        if "node" in locals():
            cluster.start(node)
            cluster.wait_up()


def report(victim: str, seen: dict[str, Any]) -> None:
    """The figures, for ``pytest -s`` and the driver's README."""
    failed_calls = sum(outcome != "ok" for *_, outcome in seen["calls"])
    failed_casts = sum(outcome != "ok" for *_, outcome in seen["casts"])
    print(f"\n{victim}: node n{seen['node']} killed; calls: {len(seen['calls'])} "
          f"({failed_calls} failed), a new call succeeded {seen['call_resume']} s after the "
          f"kill; confirmed casts: {len(seen['confirmed'])} ok, {failed_casts} failed, a new "
          f"one succeeded {seen['cast_resume']} s after the kill; confirmed but never "
          f"received: {len(seen['missing'])}; stream leaders before the kill: "
          f"{seen['leaders']}")


def check_deadlines_and_losses(seen: dict[str, Any]) -> None:
    late = [(end - start, outcome) for start, end, outcome in seen["calls"]
            if end - start > CALL_TIMEOUT + 0.5]
    assert not late, f"calls that overran their deadline: {late[:5]}"
    late_casts = [(end - start, outcome) for start, end, _, outcome in seen["casts"]
                  if end - start > CAST_TIMEOUT + 0.5]
    assert not late_casts, f"confirmed casts that overran their deadline: {late_casts[:5]}"
    missing = seen["missing"]
    assert not missing, f"{len(missing)} confirmed casts lost: {sorted(missing)[:5]}"
    assert len(seen["confirmed"]) >= 50, "too few confirmed casts to prove anything"


def test_killing_the_clients_node(cluster: PrivateNatsCluster) -> None:
    seen = run_kill(cluster, "follower")
    check_deadlines_and_losses(seen)
    assert seen["call_resume"] is not None and seen["call_resume"] < 2.0
    assert seen["cast_resume"] is not None and seen["cast_resume"] < 2.0


def test_killing_the_clients_node_that_leads_the_stream(cluster: PrivateNatsCluster) -> None:
    """One stream of confirmed casts (``nats_cast_streams = 1``): calls
    resume at once; confirmed casts wait for JetStream to elect a new stream
    leader (RAFT inside nats-server, see ELECTION_BOUND), failing at their
    deadlines meanwhile, and none that was confirmed is lost. The bound on
    that wait is loose: it is the server's, not ours."""
    seen = run_kill(cluster, "leader")
    check_deadlines_and_losses(seen)
    assert seen["call_resume"] is not None and seen["call_resume"] < 2.0
    assert seen["cast_resume"] is not None and seen["cast_resume"] < ELECTION_BOUND


def test_a_standby_stream_takes_confirmed_casts_when_the_leader_dies(
        cluster: PrivateNatsCluster) -> None:
    """``nats_cast_streams = 2``: the killed node led the stream the client
    publishes to; confirmed casts go to the other stream (led elsewhere)
    within 2 s, and none that was confirmed is lost."""
    seen = run_kill(cluster, "leader", streams=2)
    check_deadlines_and_losses(seen)
    assert seen["call_resume"] is not None and seen["call_resume"] < 2.0
    assert seen["cast_resume"] is not None and seen["cast_resume"] < 2.0
