"""Names and addresses of the qpid driver: injective, broker-safe, bounded."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rpccore_qpid import addressing
from rpccore_qpid.layout import V1Layout, V2Layout, choose, refusal

_ALPHABET = re.compile(r"^[A-Za-z0-9_-]*$")
texts = st.text(max_size=40)


@given(texts, texts)
def test_encode_part_is_injective(a: str, b: str) -> None:
    if a != b:
        assert addressing.encode_part(a) != addressing.encode_part(b)


@given(texts)
def test_encode_part_uses_a_safe_alphabet(text: str) -> None:
    encoded = addressing.encode_part(text)
    assert _ALPHABET.match(encoded), encoded
    assert "/" not in encoded and "." not in encoded


_keys = st.one_of(st.tuples(st.just("w"), texts, texts),
                  st.tuples(st.just("f"), texts, texts),
                  st.tuples(st.just("d"), texts, texts, texts))


def _name(key: tuple[str, ...]) -> str:
    kind, *parts = key
    make = {"w": addressing.work_queue, "f": addressing.fanout_key,
            "d": addressing.direct_queue}[kind]
    return make(*parts)


@settings(max_examples=500)
@given(_keys, _keys)
def test_different_destinations_never_share_a_name(a: tuple[str, ...],
                                                   b: tuple[str, ...]) -> None:
    if a != b:
        assert _name(a) != _name(b)


@given(texts, texts, texts)
def test_names_fit_the_broker_and_never_hold_a_slash(ns: str, topic: str, host: str) -> None:
    for name in (addressing.work_queue(ns, topic), addressing.direct_queue(ns, topic, host),
                 addressing.fanout_key(ns, topic)):
        assert "/" not in name
        assert len(name.encode()) <= addressing.MAX_NAME
        assert name.startswith(addressing.PREFIX + ".")


def test_kinds_are_kept_apart() -> None:
    assert addressing.work_queue("n", "t") != addressing.fanout_key("n", "t")
    assert addressing.direct_queue("n", "a.b", "c") != addressing.direct_queue("n", "a", "b.c")
    assert addressing.work_queue("n.x", "t") != addressing.work_queue("n", "x.t")


def test_long_names_are_digested_and_still_distinct() -> None:
    long_a, long_b = "é" * 300, "é" * 299 + "è"
    a = addressing.work_queue("ns", long_a)
    b = addressing.work_queue("ns", long_b)
    assert a != b and a.startswith("rpccore-qpid.h.") and len(a) <= addressing.MAX_NAME


def test_readable_names_stay_readable() -> None:
    assert addressing.work_queue("nova", "compute") == "rpccore-qpid.w.nova.compute"
    assert addressing.direct_queue("nova", "compute", "node-1") == \
        "rpccore-qpid.d.nova.compute.node-1"
    assert addressing.encode_part("a.b/c_") == "a_2eb_2fc_5f"


def test_v1_addresses() -> None:
    layout = V1Layout()
    node = layout.durable("q")
    assert (node.address, node.durable_source, node.requests) == ("/queue/q", True, ())
    assert layout.queue_target("q") == "/amq/queue/q"
    assert layout.fanout_target("k") == "/exchange/amq.direct/k"
    assert layout.fanout("k", "ignored").address == "/exchange/amq.direct/k"
    assert layout.fanout("k", "ignored").durable_source
    reply = layout.reply_to(addressing.new_reply_queue())
    assert layout.is_reply_address(reply)
    assert addressing.new_reply_queue().startswith("reply_")
    for bad in (None, "/amq/queue/other", "/queue/reply_" + "0" * 32, reply + "x", 5,
                "/queues/reply_" + "0" * 32):
        assert not layout.is_reply_address(bad)


def test_v2_addresses_declare_durable_and_exclusive_queues() -> None:
    layout = V2Layout(expiry=60)
    node = layout.durable("rpccore-qpid.w.n.t")
    assert node.address == "/queues/rpccore-qpid.w.n.t" and not node.durable_source
    (put,) = node.requests
    assert (put.method, put.path) == ("PUT", "/queues/rpccore-qpid.w.n.t")
    assert put.body == {"durable": True, "exclusive": False, "auto_delete": False,
                        "arguments": {"x-expires": 60_000}}
    queue = addressing.fanout_queue("n", "t")
    fanout = layout.fanout("rpccore-qpid.f.n.t", queue)
    put, bind = fanout.requests
    assert put.body["exclusive"] and not put.body["durable"]
    assert (bind.method, bind.path) == ("POST", "/bindings")
    assert bind.body["destination_queue"] == queue and bind.body["source"] == "amq.direct"
    assert layout.reply("reply_x").requests[0].body["exclusive"]
    assert layout.queue_target("q") == "/queues/q"
    assert layout.fanout_target("k") == "/exchanges/amq.direct/k"
    assert layout.is_reply_address(layout.reply_to(addressing.new_reply_queue()))
    assert not layout.is_reply_address("/amq/queue/reply_" + "0" * 32)
    assert addressing.fanout_queue("n", "t") != queue
    assert V2Layout(expiry=0).durable("q").requests[0].body["arguments"] == {}


def test_the_address_format_follows_the_broker() -> None:
    rabbit4 = {"product": "RabbitMQ", "version": "4.0.5"}
    assert isinstance(choose("auto", rabbit4, 60), V2Layout)
    assert isinstance(choose("auto", {"product": "RabbitMQ", "version": "3.10.8"}, 60),
                      V1Layout)
    assert isinstance(choose("auto", None, 60), V1Layout)
    assert isinstance(choose("v1", rabbit4, 60), V1Layout)
    assert isinstance(choose("v2", None, 60), V2Layout)


def test_a_queue_with_other_settings_is_a_config_error() -> None:
    text = ("PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': "
            "received 'true' but current is 'false'")
    error = refusal("edge", "q", text)
    assert error is not None and "older" in str(error) and "delete_queue 'q'" in str(error)
    assert refusal("edge", "q", "amqp:not-found") is None


#: Names as the driver has always spelt them: durable queues on a broker
#: outlive an upgrade, so these strings must never change.
_PINNED = [
    (addressing.work_queue, ("nova", "compute"), "rpccore-qpid.w.nova.compute"),
    (addressing.work_queue, ("nova", "compute.node-1"), "rpccore-qpid.w.nova.compute_2enode-1"),
    (addressing.direct_queue, ("nova", "scheduler", "host-7.example.org"),
     "rpccore-qpid.d.nova.scheduler.host-7_2eexample_2eorg"),
    (addressing.direct_queue, ("ns/x", "a/b", "c_d"), "rpccore-qpid.d.ns_2fx.a_2fb.c_5fd"),
    (addressing.fanout_key, ("nova", "cells.\u00e9moji-\u2603"),
     "rpccore-qpid.f.nova.cells_2e_c3_a9moji-_e2_98_83"),
    (addressing.notification_key, ("rpccore", "notifications.info"),
     "rpccore-qpid.n.rpccore.notifications_2einfo"),
    (addressing.pool_queue, ("rpccore", "notifications.info", None),
     "rpccore-qpid.p.rpccore.notifications_2einfo"),
    (addressing.pool_queue, ("rpccore", "notifications.info", ""),
     "rpccore-qpid.p.rpccore.notifications_2einfo."),
    (addressing.pool_queue, ("rpccore", "notifications.info", "billing.eu"),
     "rpccore-qpid.p.rpccore.notifications_2einfo.billing_2eeu"),
    (addressing.work_queue, ("nova", "\ud800"), "rpccore-qpid.w.nova._ed_a0_80"),
    (addressing.work_queue, ("nova", "t" * 300),
     "rpccore-qpid.h.bccd89dac524a4b86b2467546402c894b4f914450773a99fd49347dd3406ab49"),
    (addressing.direct_queue, ("nova", "\u00e9" * 100, "host"),
     "rpccore-qpid.h.7d1375b5f0b4bea528117e8c7562df4814c068d1a5e64f768e64b293fdb5e9a2"),
    # 200 characters are kept, 201 are digested
    (addressing.work_queue, ("n", "x" * 183), "rpccore-qpid.w.n." + "x" * 183),
    (addressing.work_queue, ("n", "x" * 184),
     "rpccore-qpid.h.f729cabf70c34ad85828745d0880c43b1a06d2d4ea4c9d66ad89e95c2ac9f5d3"),
]


def test_names_are_pinned() -> None:
    for make, args, expected in _PINNED:
        assert make(*args) == expected, (make.__name__, args)
