"""The driver conformance suite on the qpid (AMQP 1.0) driver, against the
shared RabbitMQ at 127.0.0.1:5672 with the rabbitmq_amqp1_0 plugin (v1
addresses; RabbitMQ 4 with v2 addresses: tests/integration/test_rabbitmq4.py).

Every test gets its own control_exchange, so tests (and other suites on the
same broker) never see each other's messages. Work and direct queues are
meant to outlive their servers, so the module deletes the ones its tests
made (over AMQP 0-9-1, test-side only: AMQP 1.0 on RabbitMQ 3.10 cannot
delete queues) when it ends. The last test is the guard of the queue layout.

No notification tests here: RabbitMQ 3.10's AMQP 1.0 plugin cannot hold
listener pools, so a qpid cell on it raises ``ConfigError`` for them
(tests/integration/test_qpid_notifications.py); the kit's notification
tests run on RabbitMQ 4 (tests/integration/test_rabbitmq4.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from qpid_suites import NAMESPACES, QpidConformance, check_qpid_layout, delete_idle_queues
from queue_listing import admin_for

URL = os.environ.get("RPCCORE_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="module", autouse=True)
def _delete_queues_at_the_end() -> Iterator[None]:
    yield
    if NAMESPACES:
        delete_idle_queues(NAMESPACES)


class TestQpidConformance(QpidConformance):
    url = URL


def test_no_queue_of_this_run_is_transient_and_shared() -> None:
    """RabbitMQ 3.10's plugin declares every queue this driver uses durable
    (reply and fanout queues too: it cannot make exclusive ones); none is
    non-durable and non-exclusive."""
    queues = check_qpid_layout(URL, admin_for(URL.replace("qpid://", "rabbit://", 1)))
    assert all(q.durable for q in queues), queues
