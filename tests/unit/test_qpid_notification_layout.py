"""The qpid driver's notification pieces that need no broker: pool queue
names, the v2 pool layout, the retention arguments, what the broker's
refusals mean, the management node's body-less requests, and the error of
a cell with v1 addresses (which never connects)."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proton import Message

from rpccore import RPC
from rpccore.errors import ConfigError
from rpccore.stats import CellStats
from rpccore.testing import NotificationRecorder, single_cell_rpc
from rpccore_qpid import addressing, management, notifications
from rpccore_qpid.layout import POOL_TOLERATED, V1Layout, V2Layout, deletion
from rpccore_qpid.receiver import _tolerated

texts = st.text(max_size=40)
pools = st.one_of(st.none(), texts)


@settings(max_examples=500)
@given(texts, texts, pools, texts, texts, pools)
def test_pool_queues_are_injective(ns_a: str, topic_a: str, pool_a: str | None,
                                   ns_b: str, topic_b: str, pool_b: str | None) -> None:
    if (ns_a, topic_a, pool_a) != (ns_b, topic_b, pool_b):
        assert addressing.pool_queue(ns_a, topic_a, pool_a) != \
            addressing.pool_queue(ns_b, topic_b, pool_b)


@given(texts, texts, pools)
def test_pool_queues_and_keys_fit_the_broker(ns: str, topic: str, pool: str | None) -> None:
    for name in (addressing.pool_queue(ns, topic, pool),
                 addressing.notification_key(ns, topic)):
        assert "/" not in name and len(name.encode()) <= addressing.MAX_NAME


def test_pool_none_is_a_pool_of_its_own_and_names_stay_readable() -> None:
    assert addressing.pool_queue("nova", "notifications.info", None) == \
        "rpccore-qpid.p.nova.notifications_2einfo"
    assert addressing.pool_queue("nova", "n", "billing") == "rpccore-qpid.p.nova.n.billing"
    assert addressing.pool_queue("nova", "n", None) != addressing.pool_queue("nova", "n", "")
    assert addressing.notification_key("nova", "n") == "rpccore-qpid.n.nova.n"
    # kept apart from the RPC names of the same topic
    assert addressing.notification_key("nova", "n") not in {
        addressing.fanout_key("nova", "n"), addressing.work_queue("nova", "n")}


def test_v2_pool_queue_is_durable_bounded_and_bound_on_amq_direct() -> None:
    layout = V2Layout(expiry=60)
    assert layout.carries_notifications and not V1Layout().carries_notifications
    arguments = {"x-max-length": 5}
    node = layout.pool("rpccore-qpid.p.n.t.a b", "rpccore-qpid.n.n.t", arguments)
    assert node.address == "/queues/rpccore-qpid.p.n.t.a%20b"
    put, bind = node.requests
    assert (put.method, put.path) == ("PUT", "/queues/rpccore-qpid.p.n.t.a%20b")
    assert put.body == {"durable": True, "exclusive": False, "auto_delete": False,
                        "arguments": arguments}
    assert put.tolerated == POOL_TOLERATED and "x-overflow" not in POOL_TOLERATED
    assert bind.body == {"source": "amq.direct", "binding_key": "rpccore-qpid.n.n.t",
                         "destination_queue": "rpccore-qpid.p.n.t.a b", "arguments": {}}
    assert layout.notification_target("k") == "/exchanges/amq.direct/k"
    assert (deletion("a b").method, deletion("a b").path) == ("DELETE", "/queues/a%20b")
    with pytest.raises(NotImplementedError):
        V1Layout().pool("q", "k", {})


def test_pool_arguments_come_from_the_retention_options() -> None:
    options = SimpleNamespace(notification_max_queue_length=10, notification_ttl=1.5,
                              notification_pool_expiry=3600)
    assert notifications.pool_arguments(options) == {
        "x-max-length": 10, "x-overflow": "reject-publish", "x-message-ttl": 1500,
        "x-expires": 3_600_000}
    options.notification_pool_expiry = 0
    assert "x-expires" not in notifications.pool_arguments(options)


def test_other_retention_bounds_are_tolerated_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    put, bind = V2Layout(expiry=0).pool(f"q-{time.monotonic_ns()}", "k", {}).requests
    text = "inequivalent arg 'x-max-length' for queue 'q' in vhost '/': received '3' " \
        "but current is '2'"
    with caplog.at_level(logging.WARNING):
        assert _tolerated(put, 409, text) and _tolerated(put, 409, text)
    assert len([r for r in caplog.records if "x-max-length" in r.getMessage()]) == 1
    assert not _tolerated(put, 409, text.replace("x-max-length", "x-overflow"))
    assert not _tolerated(bind, 409, text)
    assert not _tolerated(put, 400, text)


def test_refusals_are_final_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    cell: Any = SimpleNamespace(name="edge", stats=CellStats())
    outcomes = notifications.Outcomes(cell)
    with caplog.at_level(logging.WARNING):
        assert outcomes.refused("rejected", "/exchanges/amq.direct/k") is None
        assert outcomes.refused("rejected", "/exchanges/amq.direct/k") is None
    assert cell.stats.get("notifications_dropped") == 2
    assert any("dropped" in r.getMessage() and "notification_max_queue_length"
               in r.getMessage() for r in caplog.records)
    assert outcomes.refused("released", "/exchanges/amq.direct/k") is None
    assert cell.stats.get("returned") == 1 and cell.stats.get("notifications_dropped") == 2


def test_body_less_management_requests_carry_a_null_body() -> None:
    delete = Message(id="1", address="/queues/q", subject="DELETE", reply_to="$me")
    data = management.encode(delete)
    assert data.endswith(management.NULL_BODY)
    decoded = Message()
    decoded.decode(data)
    assert (decoded.subject, decoded.address, decoded.body) == ("DELETE", "/queues/q", None)
    put = Message(id="2", subject="PUT", body={"durable": True})
    assert management.encode(put) == put.encode()


def _v1_rpc(url: str) -> RPC:
    return single_cell_rpc(url, cell="edge", amqp_addresses="v1")


def test_a_v1_cell_refuses_notifications_at_once_without_connecting() -> None:
    # nothing listens on port 1: a ConfigError (not a TransportError after
    # retries) shows the driver never tried to connect
    rpc = _v1_rpc("qpid://guest:guest@127.0.0.1:1/")
    try:
        start = time.monotonic()
        with pytest.raises(ConfigError) as info:
            rpc.notifier("pub", cell="edge").info({}, "e", {})
        for words in ("RabbitMQ 4", "cannot bind a named queue to an exchange",
                      "amqp_addresses = auto or v2", "notification_cell", "rabbit://"):
            assert words in str(info.value)
        with pytest.raises(ConfigError, match="RabbitMQ 4"):
            rpc.listener(["n"], [NotificationRecorder()], cell="edge").start()
        assert time.monotonic() - start < 1.0
        assert rpc.stats()["edge"]["notifications_sent"] == 0
        rpc.cell("edge").driver().delete_pool("n", None)  # never raises
    finally:
        rpc.close()
