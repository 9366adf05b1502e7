"""The rabbit driver on RabbitMQ 4 itself: a private RabbitMQ 4.0 node from
Debian 13's packages (tests/private_rabbit4.py), configured as 4.3 is by
default, and stricter: non-durable non-exclusive queues refused (541),
global QoS refused, AMQP 1.0 v1 addresses refused.

The rabbit driver's conformance suite runs on it in each queue type, the qpid
driver's with v2 addresses (its notification tests too: qpid carries
notifications on RabbitMQ 4 only), then the guards of the queue layouts list
the node's queues. The node and its data go when the module ends.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import amqp
import pytest

from private_rabbit4 import PrivateRabbit4
from qpid_suites import QpidConformance, check_qpid_layout
from queue_listing import BrokerAdmin
from rabbit_suites import RabbitConformance, check_queue_layout, poison_rounds
from rpccore.testing import BrokerNotificationConformance, NotificationRecorder, single_cell_rpc
from rpccore_qpid import addressing


@pytest.fixture(scope="module")
def rabbitmq4() -> Iterator[PrivateRabbit4]:
    with PrivateRabbit4() as node:
        print(f"RabbitMQ {node.version()} on port {node.port}")
        yield node


class TestRabbitOnRabbitMQ4(RabbitConformance):
    queue_type = "classic"

    @pytest.fixture(autouse=True)
    def _on_rabbitmq4(self, rabbitmq4: PrivateRabbit4) -> None:
        self.url = rabbitmq4.url("rabbit")


class TestRabbitOnRabbitMQ4Quorum(TestRabbitOnRabbitMQ4):
    queue_type = "quorum"


class TestQpidOnRabbitMQ4(QpidConformance, BrokerNotificationConformance):
    """The qpid driver with v2 addresses (``amqp_addresses = auto`` picks them
    on RabbitMQ 4; the node refuses v1 addresses), notifications included
    (they need RabbitMQ 4: on 3.x, tests/integration/test_qpid_notifications.py)."""

    @pytest.fixture(autouse=True)
    def _on_rabbitmq4(self, rabbitmq4: PrivateRabbit4) -> None:
        self.url = rabbitmq4.url("qpid")


def test_the_node_refuses_transient_shared_queues(rabbitmq4: PrivateRabbit4) -> None:
    """The node really is as strict as the module says (else the suites
    above prove nothing about RabbitMQ 4.3's default)."""
    with amqp.Connection(f"{rabbitmq4.host}:{rabbitmq4.port}") as conn:
        assert conn.server_properties["version"].startswith("4.")
        with pytest.raises(amqp.exceptions.AMQPError) as info:
            conn.channel().queue_declare("transient-shared", durable=False,
                                         auto_delete=True)
        assert "transient_nonexcl_queues" in str(info.value)


def test_no_queue_is_transient_and_shared_on_rabbitmq4(rabbitmq4: PrivateRabbit4) -> None:
    check_queue_layout(rabbitmq4.url("rabbit"),
                       BrokerAdmin(rabbitmq4.url("rabbit"), rabbitmq4.rabbitmqctl_command()))


def test_poison_messages_are_dropped_and_counted_on_rabbitmq4(
        rabbitmq4: PrivateRabbit4) -> None:
    assert poison_rounds(rabbitmq4.url("rabbit"), "poison-r4", limit=2) == (2, 1, 0)


def test_no_qpid_queue_is_transient_and_shared_on_rabbitmq4(rabbitmq4: PrivateRabbit4) -> None:
    queues = check_qpid_layout(rabbitmq4.url("qpid"),
                               BrokerAdmin(rabbitmq4.url("rabbit"),
                                           rabbitmq4.rabbitmqctl_command()), pools=True)
    # v2: work, host and pool queues durable with x-expires; fanout and reply exclusive
    assert all((q.durable and "x-expires" in q.arguments) or q.exclusive for q in queues)
    assert any(q.exclusive for q in queues), queues
    pool = [q for q in queues if q.name.startswith(addressing.PREFIX + ".p.")]
    assert len(pool) == 1 and "x-max-length" in pool[0].arguments, queues


def test_qpid_pool_queue_keeps_a_backlog_and_delete_pool_deletes_it(
        rabbitmq4: PrivateRabbit4) -> None:
    """A qpid pool queue on RabbitMQ 4: durable, bounded as the cell says,
    bound on amq.direct; it keeps a stopped pool's notifications, and
    ``delete_pool`` deletes it with them (a pool that listens again starts
    empty)."""
    namespace = f"pools-{os.urandom(4).hex()}"
    rpc = single_cell_rpc(rabbitmq4.url("qpid"), control_exchange=namespace,
                          notification_max_queue_length=50, notification_ttl=60.5,
                          notification_pool_expiry=120)
    name = addressing.pool_queue(namespace, "events", "billing")
    try:
        listener = rpc.listener(["events"], [NotificationRecorder()], pool="billing").start()
        listener.stop()
        assert listener.wait(10)
        notifier = rpc.notifier("pub", topics=["events"])
        for n in range(3):
            notifier.info({}, "e", {"n": n}, confirm=True)
        listing = rabbitmq4.rabbitmqctl("list_queues", "-q", "--no-table-headers", "name",
                                        "durable", "messages", "arguments")
        [row] = [line.split("\t") for line in listing.splitlines()
                 if line.startswith(name + "\t")]
        assert row[1:3] == ["true", "3"], row
        for argument in ('"x-max-length",50', '"x-message-ttl",60500', '"x-expires",120000',
                         '"x-overflow","reject-publish"'):
            assert argument in row[3], row
        bindings = rabbitmq4.rabbitmqctl("list_bindings", "-q", "--no-table-headers",
                                         "source_name", "destination_name", "routing_key")
        assert f"amq.direct\t{name}\t{addressing.notification_key(namespace, 'events')}" \
            in bindings.splitlines()
        rpc.cell().driver().delete_pool("events", "billing")
        assert name not in rabbitmq4.rabbitmqctl("list_queues", "-q", "name").split()
        again = NotificationRecorder()
        rpc.listener(["events"], [again], pool="billing").start()
        notifier.info({}, "e", {"n": 3}, confirm=True)
        assert [n.payload["n"] for n in again.wait_for(1, 10)] == [3]
        time.sleep(0.3)  # nothing of the deleted backlog follows
        assert len(again.notifications) == 1
    finally:
        rpc.close()
