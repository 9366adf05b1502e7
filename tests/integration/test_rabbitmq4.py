"""The rabbit driver on RabbitMQ 4 itself: a private RabbitMQ 4.0 node from
Debian 13's packages (tests/private_rabbit4.py), configured as 4.3 is by
default, and stricter: non-durable non-exclusive queues refused (541),
global QoS refused, AMQP 1.0 v1 addresses refused.

The rabbit driver's conformance suite runs on it in each queue type, the qpid
driver's with v2 addresses, then the guards of the queue layouts list the
node's queues. The node and its data go when the
module ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import amqp
import pytest
from private_rabbit4 import PrivateRabbit4
from queue_listing import BrokerAdmin
from qpid_suites import QpidConformance, check_qpid_layout
from rabbit_suites import RabbitConformance, check_queue_layout, poison_rounds


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


class TestQpidOnRabbitMQ4(QpidConformance):
    """The qpid driver with v2 addresses (``amqp_addresses = auto`` picks them
    on RabbitMQ 4; the node refuses v1 addresses)."""

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
                                           rabbitmq4.rabbitmqctl_command()))
    # v2: work and host queues durable with x-expires; fanout and reply exclusive
    assert all((q.durable and "x-expires" in q.arguments) or q.exclusive for q in queues)
    assert any(q.exclusive for q in queues), queues
