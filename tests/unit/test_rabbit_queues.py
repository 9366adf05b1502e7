"""The rabbit driver's queue layout and what a refused declaration tells the
operator (no network)."""

from __future__ import annotations

from rpccore.errors import ConfigError
from rpccore_rabbit import queues, wire
from rpccore_rabbit.backoff import Backoff
from rpccore_rabbit.options import ConnectionParams


def _params(**overrides: object) -> ConnectionParams:
    values: dict[str, object] = dict(
        hosts=(), virtual_host="/", ssl_options=None, heartbeat=10, connect_timeout=3.0,
        reconnect_interval=0.1, reconnect_backoff=2.0, reconnect_interval_max=1.0,
        durable=False, queue_type="classic", delivery_limit=20, queue_expiry=3600,
        prefetch_count=10, max_unconfirmed=100)
    values.update(overrides)
    return ConnectionParams(**values)  # type: ignore[arg-type]


def test_no_queue_is_transient_and_shared() -> None:
    for queue_type in ("classic", "quorum"):
        work = queues.durable_queue(_params(queue_type=queue_type), "q", "t.k")
        assert work.durable and not work.exclusive and not work.auto_delete
        assert work.arguments["x-expires"] == 3_600_000
    fanout = queues.fanout_queue("rpccore.x.f.t", "f.t")
    assert fanout.exclusive and fanout.auto_delete and not fanout.durable


def test_quorum_queues_carry_their_type_and_delivery_limit() -> None:
    assert queues.durable_queue(_params(queue_type="quorum"), "q", "k").arguments == {
        "x-expires": 3_600_000, "x-queue-type": "quorum", "x-delivery-limit": 20}
    # classic queues are declared as every earlier rpccore did: no x-queue-type
    assert queues.durable_queue(_params(queue_expiry=0, delivery_limit=0), "q", "k") \
        .arguments == {}
    assert queues.durable_queue(_params(queue_type="quorum", delivery_limit=0), "q", "k") \
        .arguments == {"x-expires": 3_600_000, "x-queue-type": "quorum"}


# what RabbitMQ 3.10.8 and 4.0.5 answered (observed)
TYPE_310 = ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'rpccore.n.t.a' "
            "in vhost '/': received 'quorum' but current is none")
TYPE_40 = ("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'rpccore.n.t.a' "
           "in vhost 'v': received the value 'classic' of type 'longstr' but current is the "
           "value 'quorum' of type 'longstr'")
DURABLE = ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'rpccore.n.t.a' in "
           "vhost '/': received 'true' but current is 'false'")
EXPIRES = ("PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue 'q' in vhost '/': "
           "received none but current is the value '60000' of type 'signedint'")


def _explain(text: str, code: int = 406) -> ConfigError | None:
    return queues.explain_refusal(wire.ChannelClosed(code, text, "queue.declare"), "edge")


def test_a_new_queue_type_names_the_queue_both_values_and_the_way_out() -> None:
    error = _explain(TYPE_310)
    assert error is not None
    text = str(error)
    assert "cell edge: queue 'rpccore.n.t.a' (vhost '/')" in text
    assert "exists with x-queue-type = classic (not set)" in text
    assert "declares x-queue-type = quorum" in text
    assert "set rabbit_queue_type = classic" in text
    assert "rabbitmqctl delete_queue 'rpccore.n.t.a'" in text
    text = str(_explain(TYPE_40))
    assert "exists with x-queue-type = quorum" in text and "declares x-queue-type = classic" in text
    assert "set rabbit_queue_type = quorum" in text and "(vhost 'v')" in text


def test_other_refusals() -> None:
    assert "older" in str(_explain(DURABLE))
    assert "rabbit_queue_expiry" in str(_explain(EXPIRES))
    assert "60000" in str(_explain(EXPIRES))
    assert _explain("NOT_FOUND - no queue", code=404) is None
    assert isinstance(_explain("PRECONDITION_FAILED - invalid property 'auto-delete'"),
                      ConfigError)


def test_backoff_is_jittered_and_bounded() -> None:
    values = iter([0.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.25])
    backoff = Backoff(0.1, 2.0, 1.0, rng=lambda: next(values))
    assert backoff.after_loss() == 0.0              # 0 .. interval after a lost connection
    assert backoff.after_failure() == 0.1           # 0.1 * (0.5 + 0.5 * 1.0)
    assert backoff.after_failure() == 0.2 * 0.75    # grows by the factor
    assert backoff.after_failure() == 0.4 * 0.5     # half of it at least
    assert backoff.after_failure() == 0.8
    assert backoff.after_failure() == 1.0           # capped at the maximum
    backoff.reset()
    assert backoff.after_failure() == 0.1 * 0.625
    waits = [Backoff(0.1, 2.0, 1.0).after_loss() for _ in range(200)]
    assert len(set(waits)) > 150 and max(waits) <= 0.1


def test_pool_queues_are_durable_bounded_and_refuse_what_overflows() -> None:
    for queue_type in ("classic", "quorum"):
        spec = queues.pool_queue(_params(queue_type=queue_type), "rpccore.x.n.t.p", "key",
                                 max_length=10, ttl=1.5, expiry=60, prefetch=256)
        assert spec.durable and not spec.exclusive and spec.exchange == "amq.direct"
        assert spec.arguments["x-max-length"] == 10 == spec.bound
        assert spec.arguments["x-overflow"] == "reject-publish"
        assert spec.arguments["x-message-ttl"] == 1500
        assert spec.arguments["x-expires"] == 60_000
        assert ("x-queue-type" in spec.arguments) == (queue_type == "quorum")
        assert {"x-max-length", "x-message-ttl", "x-expires"} <= spec.tolerated
    never = queues.pool_queue(_params(), "q", "k", max_length=1, ttl=1, expiry=0, prefetch=1)
    assert "x-expires" not in never.arguments
