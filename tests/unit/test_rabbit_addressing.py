"""Names of the rabbit driver: injective, bounded, reversible per part."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rpccore.destination import Destination
from rpccore_rabbit import addressing

names = st.text(min_size=1, max_size=300)
# Few characters, many of them special: collisions would show up quickly.
tricky = st.text(alphabet=".#*/% _-aA\u00e9\u4f8b\ud800", min_size=1, max_size=12)


def _all_names(topic: str, host: str) -> dict[str, str]:
    direct = addressing.direct_key(topic, host)
    return {"work_key": addressing.work_key(topic), "direct_key": direct,
            "fanout_key": addressing.fanout_key(topic),
            "work_queue": addressing.queue_name("ex", addressing.work_key(topic)),
            "direct_queue": addressing.queue_name("ex", direct)}


def test_parts_round_trip_and_never_contain_a_period() -> None:
    for text in ["a.b", "#", "*", "/x y", "h\u00f4st-\u00e7.\u4f8b", "%2E", "\ud800"]:
        part = addressing.encode_part(text)
        assert "." not in part
        assert addressing.decode_part(part) == text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(tricky, names), st.one_of(tricky, names)),
                min_size=2, max_size=30, unique=True))
def test_no_two_topic_host_pairs_share_a_queue_or_routing_key(
        pairs: list[tuple[str, str]]) -> None:
    seen: dict[str, tuple[str, str, str]] = {}
    for topic, host in pairs:
        for kind, name in _all_names(topic, host).items():
            owner = (kind.split("_")[0], topic, host if kind.startswith("direct") else "")
            other = seen.setdefault(name, owner)
            assert other == owner, (name, other, owner)


@settings(max_examples=200, deadline=None)
@given(names, names)
def test_every_name_fits_in_an_amqp_short_string(topic: str, host: str) -> None:
    for name in _all_names(topic, host).values():
        assert 0 < len(name.encode("utf-8")) <= addressing.MAX_NAME_BYTES
    fanout = addressing.unique_queue_name(addressing.fanout_queue_prefix(topic, topic))
    assert len(fanout.encode()) <= addressing.MAX_NAME_BYTES
    assert len(addressing.exchange_name(topic).encode()) <= addressing.MAX_NAME_BYTES


def test_long_names_are_hashed_into_their_own_namespace() -> None:
    long_topic = "t" * 400
    key = addressing.work_key(long_topic)
    assert key.startswith("x.t.") and len(key) == 4 + 64
    assert addressing.work_key(long_topic + "u") != key
    # an unhashed name never starts with "x."
    assert not addressing.work_key("x").startswith("x.")


def test_routing_key_follows_the_destination_kind() -> None:
    assert addressing.routing_key(Destination("a.b")) == "t.a%2Eb"
    assert addressing.routing_key(Destination("a", "b.c")) == "h.a.b%2Ec"
    assert addressing.routing_key(Destination("a", fanout=True)) == "f.a"
    assert addressing.routing_key(Destination("a.b", "c")) != \
        addressing.routing_key(Destination("a", "b.c"))


def test_exchange_names() -> None:
    assert addressing.exchange_name("nova") == "nova"
    assert addressing.exchange_name("amq.direct") != "amq.direct"
    assert addressing.exchange_name("a b") != addressing.exchange_name("a%20b")
    assert addressing.exchange_name("a b").startswith("rpccore-x.")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.one_of(tricky, names), st.one_of(st.none(), tricky, names)),
                min_size=2, max_size=30, unique=True))
def test_notification_pools_have_queues_of_their_own(
        pools: list[tuple[str, str | None]]) -> None:
    """pool=None, the empty pool and every named pool of every topic get a
    queue of their own, never one of an RPC destination."""
    rpc_names = {name for topic, _ in pools for name in _all_names(topic, "h").values()}
    seen: dict[str, tuple[str, str | None]] = {}
    for topic, pool in pools + [(topic, "") for topic, _ in pools]:
        name = addressing.pool_queue_name("ex", topic, pool)
        assert seen.setdefault(name, (topic, pool)) == (topic, pool)
        assert name not in rpc_names
        assert 0 < len(name.encode("utf-8")) <= addressing.MAX_NAME_BYTES
    keys = {addressing.notification_key("ex", topic) for topic, _ in pools}
    assert len(keys) == len({topic for topic, _ in pools})
    assert addressing.notification_key("ex", "t") != addressing.notification_key("ex2", "t")
