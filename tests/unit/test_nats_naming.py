"""The nats driver's subject encoding: injective, never a wildcard, a
separator or whitespace; and its options (no server needed)."""

from __future__ import annotations

import re

import pytest

from rpccore.errors import ConfigError
from rpccore.testing import single_cell_rpc
from rpccore_nats.drops import DropCounter
from rpccore_nats.naming import MAX_TOKEN, Subjects, decode_token, encode_token
from rpccore_nats.options import connect_params

TEXTS = ["", "a", "a.b", "a*", ">", "a b", "a\tb", "%", "%25", "~x", "ä", "例", "x" * 300,
         "x" * 301, "a/b", "\\", "'\"", "\ud800", "..", ".", "*", "a>b", "-_"]
TOKEN = re.compile(r"^(%|[A-Za-z0-9_%-]+|~[0-9a-f]{64})$")


def test_tokens_are_safe_and_injective() -> None:
    tokens = [encode_token(text) for text in TEXTS]
    assert len(set(tokens)) == len(TEXTS)
    for text, token in zip(TEXTS, tokens, strict=True):
        assert TOKEN.match(token), token
        assert len(token) <= MAX_TOKEN + 1
        if not token.startswith("~"):
            assert decode_token(token) == text


def test_subjects_never_collide() -> None:
    pairs = [("t.a", "b.c"), ("t", "a.b.c"), ("t.a.b", "c"), ("t#", "x"), ("t", "#.x"),
             ("t*", "y"), ("t", "*.y"), ("t", ""), ("", "t")]
    subjects = Subjects("nova.x")
    built = set()
    for topic, host in pairs:
        built.update({subjects.direct(topic, host), subjects.work(topic), subjects.fanout(topic),
                      subjects.confirmed_direct(topic, host), subjects.confirmed_work(topic),
                      subjects.notifications(topic)})
    topics = {topic for topic, _ in pairs}
    assert len(built) == 2 * len(pairs) + 4 * len(topics)
    for subject in built:
        assert " " not in subject and "*" not in subject and ">" not in subject
    assert Subjects("a").base != Subjects("a.b").base
    assert subjects.confirmed_work("t").startswith(subjects.cast_stream_subjects[:-1])
    assert not subjects.work("t").startswith(subjects.cast_stream_subjects[:-1])


def test_pool_none_is_apart_from_every_named_pool() -> None:
    subject = Subjects("x").notifications("t")
    names = {Subjects.consumer(subject, pool) for pool in (None, "", "None", "p", "pNone")}
    assert len(names) == 5


def test_drop_counter_counts_gaps_seen_by_one_listener_only() -> None:
    drops: list[int] = []
    counter = DropCounter(3, 10, drops.append)
    counter.see(4, 18, 1)          # 7 dropped before the pool got them
    counter.see(5, 19, 1)
    counter.see(7, 25, 1)          # delivery 6 went to another listener: not ours to count
    counter.see(8, 23, 2)          # a redelivery
    counter.see(9, 28, 1)          # 26 and 27 dropped
    assert drops == [7, 2]


def _cell(url: str, **options: object) -> object:
    cell = single_cell_rpc(url, cell="c", **options).cell("c")
    from rpccore_nats.driver import NatsDriver
    cell.register_plugin_options(NatsDriver.options())
    return cell


def test_url_and_options() -> None:
    params = connect_params(_cell("nats://u:p%40ss@h1:4223,u:p%40ss@[fd00::1]"))
    assert params.servers == ("nats://h1:4223", "nats://[fd00::1]:4222")
    assert params.connect_kwargs["user"] == "u"
    assert params.connect_kwargs["password"] == "p@ss"
    assert "p@ss" not in repr(params)
    assert connect_params(_cell("nats://")).servers == ("nats://127.0.0.1:4222",)
    tls = connect_params(_cell("nats://h:1?ssl=true"))
    assert tls.servers == ("tls://h:1",) and "tls" in tls.connect_kwargs
    with pytest.raises(ConfigError):
        connect_params(_cell("nats://a:b@h1,c:d@h2"))
    with pytest.raises(ConfigError):
        connect_params(_cell("nats://h", nats_creds_file="/no/such/file.creds"))
    with pytest.raises(ConfigError):
        connect_params(_cell("nats://h", nats_nkey_seed="SU", nats_nkey_seed_file="/x"))


def test_a_standby_cast_stream_by_default_where_streams_have_replicas() -> None:
    assert connect_params(_cell("nats://")).cast_streams == 1
    assert connect_params(_cell("nats://", nats_stream_replicas=3)).cast_streams == 2
    assert connect_params(_cell("nats://", nats_stream_replicas=3,
                                nats_cast_streams=1)).cast_streams == 1
    assert connect_params(_cell("nats://", nats_cast_streams=3)).cast_streams == 3


def test_delivery_numbers_of_both_ack_subject_forms() -> None:
    from rpccore_nats.drops import delivery_numbers
    assert delivery_numbers("$JS.ACK.S.C.2.18.4.1700000000000000000.0") == (2, 18, 4)
    assert delivery_numbers("$JS.ACK.dom.acchash.S.C.1.7.3.1700000000000000000.5.rnd") == \
        (1, 7, 3)
    assert delivery_numbers("$JS.ACK.S.C.x.18.4.1.0") is None
    assert delivery_numbers("_INBOX.a.b") is None


#: Subjects, streams and consumers as deployed: a server and a client of
#: different releases must keep meeting, and durable JetStream consumers
#: keep their names across upgrades, so these strings never change.
PINNED = [
    (("work", "compute.a#b"), "rpccore.nova%2Ex.t.compute%2Ea%23b"),
    (("direct", "t.a", "host-1.example.org"), "rpccore.nova%2Ex.h.t%2Ea.host-1%2Eexample%2Eorg"),
    (("fanout", "sched uler"), "rpccore.nova%2Ex.f.sched%20uler"),
    (("confirmed_work", "ä例"), "rpccore.nova%2Ex.c.t.%C3%A4%E4%BE%8B"),
    (("confirmed_direct", "", "%25"), "rpccore.nova%2Ex.c.h.%.%2525"),
    (("confirmed_work", "ä例", 1), "rpccore.nova%2Ex.c1.t.%C3%A4%E4%BE%8B"),
    (("confirmed_direct", "t", "h", 4), "rpccore.nova%2Ex.c4.h.t.h"),
    (("notifications", "x" * 300),
     "rpccore.nova%2Ex.n.~0d4e2ca9e9cbced7a7a5380eb29e1a3783b9b6d0db72de36a1051038e1c1fbc7"),
]


@pytest.mark.parametrize(("call", "expected"), PINNED)
def test_subjects_are_pinned(call: tuple[str, ...], expected: str) -> None:
    subjects = Subjects("nova.x")
    assert getattr(subjects, call[0])(*call[1:]) == expected


def test_stream_and_consumer_names_are_pinned() -> None:
    subjects = Subjects("nova.x")
    assert subjects.cast_stream == "rpccore-c-fbbfaf9c44fee8d0342b535891b3f1ef"
    assert subjects.cast_stream_subjects == "rpccore.nova%2Ex.c.>"
    assert subjects.cast_stream_name(0) == subjects.cast_stream
    assert subjects.cast_stream_name(1) == "rpccore-c1-fbbfaf9c44fee8d0342b535891b3f1ef"
    assert subjects.cast_stream_wildcard(0) == subjects.cast_stream_subjects
    assert subjects.cast_stream_wildcard(2) == "rpccore.nova%2Ex.c2.>"
    notifications = subjects.notifications("n.t")
    assert Subjects.notification_stream(notifications) == \
        "rpccore-n-2fd295ae42cc8b4249ecb11362b5a105"
    assert Subjects.consumer(notifications, "pool.a") == "c4d61aa9acda082f60071010a9bdf6d5d"
    assert Subjects.consumer(notifications, None) == "c064f8d63ac9dca237a046e2c159f71e1"
    assert Subjects("").base == "rpccore.%"
    assert encode_token("\ud800") == "%ED%A0%80"
    assert encode_token("~x") == "%7Ex"
    assert encode_token("x" * MAX_TOKEN) == "x" * MAX_TOKEN
