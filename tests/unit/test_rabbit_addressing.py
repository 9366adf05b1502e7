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
        part = addressing.PARTS.encode(text)
        assert "." not in part
        assert addressing.PARTS.decode(part) == text


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


# Queue names and routing keys as released: a broker keeps queues (and their
# messages, bindings and policies) across an upgrade of the driver, so these
# strings must never change. Computed with the driver's own encoder before it
# moved onto rpccore.driverkit.
PINNED = [
    (lambda: addressing.work_key("compute"), "t.compute"),
    (lambda: addressing.work_key("a.b#c*d"), "t.a%2Eb%23c%2Ad"),
    (lambda: addressing.direct_key("compute", "host-1.example.org"),
     "h.compute.host-1%2Eexample%2Eorg"),
    (lambda: addressing.direct_key("t\u00e9st", "[fd00::5]:9600"),
     "h.t%C3%A9st.%5Bfd00%3A%3A5%5D%3A9600"),
    (lambda: addressing.fanout_key("x y/z"), "f.x%20y%2Fz"),
    (lambda: addressing.exchange_name("nova"), "nova"),
    (lambda: addressing.exchange_name("amq.direct"), "rpccore-x.amq%2Edirect"),
    (lambda: addressing.exchange_name("\u00e9" * 200),
     "x.e.dfc6d3bccf29a91a64a379a122b6ee10764da143d33901d2fff5dab5e0070113"),
    (lambda: addressing.queue_name("nova", addressing.work_key("compute")),
     "rpccore.nova.t.compute"),
    (lambda: addressing.queue_name("my exchange", addressing.direct_key("c.d", "h")),
     "rpccore.my%20exchange.h.c%2Ed.h"),
    (lambda: addressing.queue_name("nova", addressing.direct_key("c" * 200, "\ud800")),
     "rpccore.nova.h." + "c" * 200 + ".%ED%A0%80"),
    (lambda: addressing.queue_name("e" * 200, addressing.work_key("w" * 100)),
     "x.q.d8d0945d49504d5daa457e02e763c0184f273eac9a27682d1d3aaa2f5f80e5e6"),
    (lambda: addressing.fanout_queue_prefix("nova", "scheduler.x"),
     "rpccore.nova.f.scheduler%2Ex"),
    (lambda: addressing.notification_key("nova", "notifications.info"),
     "rpccore.nova.n.notifications%2Einfo"),
    (lambda: addressing.pool_queue_name("nova", "notifications", None),
     "rpccore.nova.n.notifications"),
    (lambda: addressing.pool_queue_name("nova", "notifications", "pool.1"),
     "rpccore.nova.n.notifications.pool%2E1"),
    (lambda: addressing.pool_queue_name("nova", "notifications", ""),
     "rpccore.nova.n.notifications."),
    (lambda: addressing.pool_queue_name("nova", "n" * 300, "p"),
     "x.q.84c668ab7aa8670add8a0ebfe3fd749606a651a90178c0882901c050420181c5"),
    (lambda: addressing.work_key("t" * 300),
     "x.t.c2c44a88a54d09454be79c31aca54eb63d40dea99b90df81c95a16e7054df27a"),
]


def test_names_stay_what_released_drivers_declared() -> None:
    assert [build() for build, _ in PINNED] == [name for _, name in PINNED]
