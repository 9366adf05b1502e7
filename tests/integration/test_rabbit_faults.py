"""The rabbit driver when its broker crashes, restarts or hangs.

Runs against a private RabbitMQ node (tests/private_rabbit.py) that this
module starts once, SIGKILLs and restarts; never the machine's shared broker.

What is asserted (and promised in drivers/rabbit/README.md): with
``amqp_durable_queues`` on, a cast sent with ``confirm=True`` that returned
without raising is delivered **at least once** (duplicates are possible: a
message a server had received but not acknowledged when the broker died is
delivered again).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_rabbit import PrivateRabbit
from rabbit_traffic import Casts, Sink
from rpccore import RPC
from rpccore.errors import Timeout, TransportError
from rpccore.testing import single_cell_rpc, wait_until

SENDERS = 4
CASTS = 5000


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit() as rabbit:
        yield rabbit


def _rpc(node: PrivateRabbit, exchange: str, **options: Any) -> RPC:
    return single_cell_rpc(node.url("rabbit"), control_exchange=exchange, **options)


def _call_in_flight(caller: RPC, topic: str, outcome: dict[str, Any]) -> threading.Thread:
    """A call that is running when the broker dies: it must end (either
    way) by its deadline; ``outcome`` gets its result and how long it took."""
    def run() -> None:
        start = time.monotonic()
        try:
            outcome["result"] = caller.call(
                {}, topic, {"method": "slow", "args": {"seconds": 0.5}}, timeout=3)
        except (Timeout, TransportError) as exc:
            outcome["result"] = exc
        outcome["elapsed"] = time.monotonic() - start

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _resume_delay(node: PrivateRabbit, sink: Sink, killed_at: float) -> float:
    """Restart the broker; seconds from its accepting connections to the
    server's first delivery after the crash."""
    node.restart()
    while not node.accepts_connections():
        time.sleep(0.01)
    accepting_at = time.monotonic()
    assert accepting_at - killed_at < 60
    assert wait_until(lambda: sink.first_after(killed_at) is not None, 10, 0.01), \
        "the server never received anything after the restart"
    resumed = sink.first_after(killed_at)
    assert resumed is not None
    return resumed - accepting_at


def test_confirmed_casts_survive_a_broker_crash(node: PrivateRabbit) -> None:
    exchange = f"faults-{os.urandom(4).hex()}"
    topic = "faults.crash"
    sink = Sink()
    server_rpc, client, caller = (_rpc(node, exchange, amqp_durable_queues=True)
                                  for _ in range(3))
    try:
        server_rpc.serve(server_rpc.make_destination(topic, host="h1"), [sink]).start()
        assert caller.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=5) == 3
        casts = Casts(client, topic, CASTS, SENDERS).start()
        assert wait_until(lambda: casts.count() >= 2000, 60), \
            "2,000 confirmed casts did not happen in 60 s"
        in_flight: dict[str, Any] = {}
        flying = _call_in_flight(caller, topic, in_flight)
        time.sleep(0.1)
        node.kill()
        killed_at = time.monotonic()
        print(f"broker killed after {casts.count()} confirmed casts")
        assert casts.count() < CASTS - 500, "the crash must come in the middle of the stream"

        # A call during the outage fails no later than 0.5 s after its timeout.
        start = time.monotonic()
        with pytest.raises((Timeout, TransportError)):
            caller.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}}, timeout=1.5)
        late = time.monotonic() - start - 1.5
        assert late <= 0.5, f"the call returned {late:.2f} s after its timeout"
        flying.join(10)
        assert "elapsed" in in_flight, "the call in flight hung"
        assert in_flight["elapsed"] <= 3.5, in_flight
        print(f"call in flight during the crash: {in_flight}")

        # The server consumes again within 2 s of the broker accepting connections.
        resume_delay = _resume_delay(node, sink, killed_at)
        print(f"server resumed {resume_delay:.3f} s after the broker accepted connections")
        assert resume_delay < 2.0

        assert casts.join(120)
        missing = sink.wait_for(casts.confirmed, 60)
        print(f"confirmed {len(casts.confirmed)}, failed {len(casts.failed)}, "
              f"received {len(sink.values)} ({sink.duplicates()} duplicates), "
              f"missing {len(missing)}")
        assert not missing, f"{len(missing)} confirmed casts lost, e.g. {sorted(missing)[:5]}"
        assert len(casts.confirmed) + len(casts.failed) == CASTS
        assert len(casts.confirmed) >= 4000, "too few casts were confirmed to prove anything"

        # Everything works again, and the clients counted their reconnections.
        assert caller.call({}, topic, {"method": "add", "args": {"a": 2, "b": 2}},
                           timeout=10) == 4
        assert client.stats()[client.default_cell]["reconnects"] >= 1
        assert server_rpc.stats()[server_rpc.default_cell]["reconnects"] >= 1
    finally:
        for rpc in (client, caller, server_rpc):
            rpc.close()


def test_call_to_a_hung_broker_fails_in_time_and_heartbeats_notice(
        node: PrivateRabbit) -> None:
    node.wait_ready(30)
    exchange = f"faults-{os.urandom(4).hex()}"
    topic = "faults.hang"
    server_rpc = _rpc(node, exchange)
    caller = _rpc(node, exchange, heartbeat_interval=1, connect_timeout=1)
    try:
        server_rpc.serve(server_rpc.make_destination(topic), [Sink()]).start()
        assert caller.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=5) == 3
        node.pause()
        try:
            start = time.monotonic()
            with pytest.raises((Timeout, TransportError)):
                caller.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}}, timeout=1)
            late = time.monotonic() - start - 1
            assert late <= 0.5, f"the call returned {late:.2f} s after its timeout"
            # A broker silent for twice the heartbeat is taken as dead.
            stats = caller.stats()[caller.default_cell]
            link = caller.cell().driver().link  # type: ignore[attr-defined]
            assert wait_until(lambda: not link.ready.is_set(), 5), "heartbeat missed nothing"
        finally:
            node.resume()
        assert wait_until(lambda: caller.stats()[caller.default_cell]["reconnects"] >= 1, 15), stats
        assert caller.call({}, topic, {"method": "add", "args": {"a": 2, "b": 3}},
                           timeout=15) == 5
    finally:
        caller.close()
        server_rpc.close()
