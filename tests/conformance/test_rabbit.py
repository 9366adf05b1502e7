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

import pytest

from queue_listing import BrokerAdmin, admin_for
from rabbit_suites import EXCHANGES, RabbitConformance, check_queue_layout, is_ours

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="module", autouse=True)
def admin() -> Iterator[BrokerAdmin]:
    """The broker's admin; removes this module's queues and exchanges at the
    end (autouse: also when only some of its tests run)."""
    broker = admin_for(RABBIT_URL)
    yield broker
    if EXCHANGES:
        mine = [q.name for q in broker.list_queues() if is_ours(q.name)]
        broker.delete(queues=mine, exchanges=sorted(EXCHANGES))


class TestRabbitConformance(RabbitConformance):
    url = RABBIT_URL
    queue_type = "classic"


class TestRabbitConformanceQuorum(RabbitConformance):
    url = RABBIT_URL
    queue_type = "quorum"


def test_no_queue_of_this_run_is_transient_and_shared(admin: BrokerAdmin) -> None:
    """Lists the queues while servers of both queue types run (work, host,
    fanout and reply queues all exist then) and what the suite left; fails on
    any non-durable non-exclusive one."""
    check_queue_layout(RABBIT_URL, admin)
