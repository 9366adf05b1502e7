"""Names and addresses of the qpid driver: injective, broker-safe, bounded."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rpccore_qpid import addressing

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


def test_addresses() -> None:
    assert addressing.declaring_address("q") == "/queue/q"
    assert addressing.existing_address("q") == "/amq/queue/q"
    assert addressing.exchange_address("k") == "/exchange/amq.direct/k"
    reply = addressing.existing_address(addressing.new_reply_queue())
    assert addressing.is_reply_address(reply)
    assert addressing.new_reply_queue().startswith("reply_")
    for bad in (None, "/amq/queue/other", "/queue/reply_" + "0" * 32, reply + "x", 5):
        assert not addressing.is_reply_address(bad)
