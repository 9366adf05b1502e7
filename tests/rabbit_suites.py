"""The driver conformance suite bound to the rabbit driver, for any broker:
tests/conformance/test_rabbit.py runs it on the machine's RabbitMQ in each
queue type, tests/integration/test_rabbitmq4.py on a private RabbitMQ 4 node.

Subclass :class:`RabbitConformance` (the name does not start with ``Test``,
so importing it collects nothing) and set ``url`` and ``queue_type``."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import amqp

from process_peers import ServerProcess
from queue_listing import BrokerAdmin, Queue, transient_shared
from rpccore import RPC
from rpccore.testing import BrokerDriverConformance, BrokerNotificationConformance, single_cell_rpc
from rpccore.testing.server_peers import NAPPER
from rpccore_rabbit.addressing import PARTS, queue_name, work_key

#: every control_exchange the suites used in this process
EXCHANGES: set[str] = set()


def is_ours(name: str) -> bool:
    """Whether queue ``name`` belongs to one of :data:`EXCHANGES`."""
    return any(name.startswith(f"rpccore.{PARTS.encode(x)}.") for x in EXCHANGES)


class RabbitConformance(BrokerDriverConformance, BrokerNotificationConformance):
    url = "rabbit://guest:guest@127.0.0.1:5672/"
    queue_type = "classic"

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_exchange"):
            self._exchange = f"conformance-{self.queue_type}-{os.urandom(4).hex()}"
            EXCHANGES.add(self._exchange)
        options.setdefault("control_exchange", self._exchange)
        options.setdefault("rabbit_queue_type", self.queue_type)
        return single_cell_rpc(self.url, **options)

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        self.make_rpc().close()  # names the exchange
        return ServerProcess(self.url, topic, host, [(NAPPER, {"announce": True})],
                             control_exchange=self._exchange,
                             rabbit_queue_type=self.queue_type).wait_ready()


def check_queue_layout(url: str, admin: BrokerAdmin) -> None:
    """The guard of the queue layout: lists the queues while servers of both
    queue types run (work, host, fanout and reply queues all exist then) and
    what the suites of this process left (:data:`EXCHANGES`); fails on any
    non-durable non-exclusive one."""
    exchange = f"layout-{os.urandom(4).hex()}"
    EXCHANGES.add(exchange)
    rpcs = []
    try:
        for queue_type in ("classic", "quorum"):
            rpc = single_cell_rpc(url, control_exchange=exchange, rabbit_queue_type=queue_type)
            rpcs.append(rpc)
            topic = f"layout.{queue_type}"
            rpc.serve(rpc.make_destination(topic, host="h1"), [_Echo()]).start()
            assert rpc.call({}, topic, {"method": "echo", "args": {"v": 1}}, timeout=10) == 1
        reply_queues = {rpc.cell().driver()._replies.name for rpc in rpcs}  # type: ignore
        live = [q for q in admin.list_queues() if is_ours(q.name) or q.name in reply_queues]
        _check(live, exchange, reply_queues)
    finally:
        for rpc in rpcs:
            rpc.close()
    left = [q for q in admin.list_queues() if is_ours(q.name)]
    assert left, "the suite left no queue at all: the listing filter is wrong"
    assert not [q for q in left if transient_shared(q)], left
    assert all(q.durable for q in left), left  # exclusive queues went with their drivers


def _check(live: list[Queue], exchange: str, reply_queues: set[str]) -> None:
    by_kind: dict[str, list[Queue]] = {}
    prefix = f"rpccore.{PARTS.encode(exchange)}."
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


def poison_rounds(url: str, exchange: str, limit: int) -> tuple[int, int, int]:
    """Cast one request to a quorum queue with ``rabbit_quorum_delivery_limit
    = limit`` and hand it to servers that never acknowledge it (each closes
    its connection instead, as a crash would) until it stops coming.

    :returns: (times it was handed to a server, ``poisoned`` counted, messages
        left in the queue)
    """
    topic = "poison.topic"
    options: dict[str, Any] = {"control_exchange": exchange, "rabbit_queue_type": "quorum",
                               "rabbit_quorum_delivery_limit": limit}
    deliveries = poisoned = 0
    sender = _rpc(url, **options)
    try:
        for attempt in range(limit + 4):
            server = _rpc(url, **options)
            got = threading.Event()
            server.cell().driver().subscribe(server.make_destination(topic),
                                             lambda incoming, got=got: got.set())
            if attempt == 0:
                sender.cast({}, topic, {"method": "m", "args": {}}, confirm=True)
            arrived = got.wait(3)
            deliveries += arrived
            time.sleep(0.3)  # the driver's own drop, if it was one, is done
            poisoned += server.stats()[server.default_cell]["poisoned"]
            server.close()  # unacknowledged: back to the queue
            if not arrived:
                break
    finally:
        sender.close()
    print(f"handed to servers {deliveries} times with rabbit_quorum_delivery_limit = "
          f"{limit}; poisoned {poisoned}")
    admin = BrokerAdmin(url, [])
    with amqp.Connection(admin.address, userid=admin.user, password=admin.password,
                         virtual_host=admin.vhost) as conn:
        queue = queue_name(exchange, work_key(topic))
        left = conn.channel().queue_declare(queue, passive=True).message_count
        conn.channel().queue_delete(queue)
    return deliveries, poisoned, left


def _rpc(url: str, **options: Any) -> RPC:
    return single_cell_rpc(url, **options)
