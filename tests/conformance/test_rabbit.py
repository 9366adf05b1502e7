"""The driver conformance suite on the rabbit driver, in each queue type
(``rabbit_queue_type = classic`` and ``quorum``), against the machine's
RabbitMQ (127.0.0.1:5672, guest/guest; ``RPCCORE_TEST_RABBIT_URL`` points it
elsewhere, e.g. at a RabbitMQ 4 node). Each test gets its own
control_exchange, so runs never clash; a missing broker fails every test.

The last test is the guard of the queue layout: no queue of this run is ever
both non-durable and non-exclusive (what RabbitMQ 4.3 refuses by default).
The module removes its queues and exchanges when it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg
from queue_listing import BrokerAdmin, Queue, admin_for, transient_shared

from rpccore import RPC
from process_peers import ServerProcess
from rpccore.testing import BrokerDriverConformance
from rpccore.testing.server_peers import NAPPER
from rpccore_rabbit.addressing import encode_part

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
#: every control_exchange this module used (their queues are this run's)
_EXCHANGES: set[str] = set()


@pytest.fixture(scope="module")
def admin() -> Iterator[BrokerAdmin]:
    broker = admin_for(RABBIT_URL)
    yield broker
    if _EXCHANGES:
        mine = [q.name for q in broker.list_queues() if _is_ours(q.name)]
        broker.delete(queues=mine, exchanges=sorted(_EXCHANGES))


def _is_ours(name: str) -> bool:
    return any(name.startswith(f"rpccore.{encode_part(x)}.") for x in _EXCHANGES)


class TestRabbitConformance(BrokerDriverConformance):
    queue_type = "classic"

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{self.queue_type}-{os.urandom(4).hex()}"
            _EXCHANGES.add(self._exchange)
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options.setdefault("control_exchange", self._exchange)
        options.setdefault("rabbit_queue_type", self.queue_type)
        rpc.add_cell(rpc.default_cell, RABBIT_URL, **options)
        return rpc

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        self.make_rpc().close()  # names the exchange
        return ServerProcess(RABBIT_URL, topic, host, [(NAPPER, {"announce": True})],
                             control_exchange=self._exchange,
                             rabbit_queue_type=self.queue_type).wait_ready()


class TestRabbitConformanceQuorum(TestRabbitConformance):
    queue_type = "quorum"


def test_no_queue_of_this_run_is_transient_and_shared(admin: BrokerAdmin) -> None:
    """Lists the queues while servers of both queue types run (work, host,
    fanout and reply queues all exist then) and what the suite left; fails on
    any non-durable non-exclusive one."""
    exchange = f"layout-{os.urandom(4).hex()}"
    _EXCHANGES.add(exchange)
    rpcs = []
    try:
        for queue_type in ("classic", "quorum"):
            rpc = RPC(cfg.ConfigOpts())
            rpc.remove_cell(rpc.default_cell)
            rpc.add_cell(rpc.default_cell, RABBIT_URL, control_exchange=exchange,
                         rabbit_queue_type=queue_type)
            rpcs.append(rpc)
            topic = f"layout.{queue_type}"
            rpc.serve(rpc.make_destination(topic, host="h1"), [_Echo()]).start()
            assert rpc.call({}, topic, {"method": "echo", "args": {"v": 1}}, timeout=10) == 1
        reply_queues = {rpc.cell().driver()._replies.name for rpc in rpcs}  # type: ignore
        live = [q for q in admin.list_queues() if _is_ours(q.name) or q.name in reply_queues]
        _check(live, exchange, reply_queues)
    finally:
        for rpc in rpcs:
            rpc.close()
    left = [q for q in admin.list_queues() if _is_ours(q.name)]
    assert left, "the suite left no queue at all: the listing filter is wrong"
    assert not [q for q in left if transient_shared(q)], left
    assert all(q.durable for q in left), left  # exclusive queues went with their drivers


def _check(live: list[Queue], exchange: str, reply_queues: set[str]) -> None:
    by_kind: dict[str, list[Queue]] = {}
    prefix = f"rpccore.{encode_part(exchange)}."
    for queue in live:
        kind = "reply" if queue.name in reply_queues else queue.name[len(prefix):][:1]
        by_kind.setdefault(kind, []).append(queue)
    assert not [q for q in live if transient_shared(q)], live
    # work (t) and host (h) queues: durable, of their type, expiring
    assert {q.type for q in by_kind["t"] + by_kind["h"]} == {"classic", "quorum"}, live
    assert all(q.durable and not q.exclusive and "x-expires" in q.arguments
               for q in by_kind["t"] + by_kind["h"]), live
    # fanout (f) and reply queues: exclusive to their connection
    assert len(by_kind["f"]) == 2 and len(by_kind["reply"]) == 2, live
    assert all(q.exclusive for q in by_kind["f"] + by_kind["reply"]), live


class _Echo:
    def echo(self, ctx: dict[str, Any], v: Any) -> Any:
        return v
