"""rpccore.driverkit.names: injective, reversible, bounded names."""

from __future__ import annotations

import itertools

import pytest

from rpccore.driverkit import NameEncoding, bounded

PERCENT = NameEncoding(NameEncoding.ALPHANUMERIC + "_-", "%")
UNDERSCORE = NameEncoding(NameEncoding.ALPHANUMERIC + "-", "_", upper=False)

AWKWARD = ["", ".", "..", "a.b", "a%2Eb", "a_2eb", "%", "_", "#", "*", "/", " ", "a b",
           "é", "日本", "\U0001f600", "\ud800", "\udfff", "x" * 300, "-", "a-b", "A", "a"]


@pytest.mark.parametrize("encoding", [PERCENT, UNDERSCORE])
def test_round_trip_and_alphabet(encoding: NameEncoding) -> None:
    allowed = set(NameEncoding.ALPHANUMERIC) | {"-", encoding.escape}
    if encoding is PERCENT:
        allowed.add("_")
    for text in AWKWARD:
        encoded = encoding.encode(text)
        assert set(encoded) <= allowed, (text, encoded)
        assert encoding.separator not in encoded
        assert encoding.decode(encoded) == text


@pytest.mark.parametrize("encoding", [PERCENT, UNDERSCORE])
def test_injective_over_awkward_strings(encoding: NameEncoding) -> None:
    encoded = [encoding.encode(text) for text in AWKWARD]
    assert len(set(encoded)) == len(AWKWARD)


def test_joined_names_never_collide() -> None:
    # the classic collision of delimiter-joined names: ("a.b", "c") vs ("a", "b.c")
    parts = ["a", "b", "a.b", "b.c", "c", ".", ""]
    names = {(p, q): PERCENT.join("h", p, q) for p, q in itertools.product(parts, repeat=2)}
    assert len(set(names.values())) == len(names)
    assert PERCENT.join("t", "a.b") != PERCENT.join("h", "a", "b")


def test_known_names() -> None:
    # the exact output matters: brokers keep queues by these names across upgrades
    assert PERCENT.join("w", "nova", "compute.a#b") == "w.nova.compute%2Ea%23b"
    assert PERCENT.encode("é") == "%C3%A9"
    assert UNDERSCORE.join("rpccore-qpid.w", "ns", "a.b_c/é") == \
        "rpccore-qpid.w.ns.a_2eb_5fc_2f_c3_a9"
    assert UNDERSCORE.encode("plain-Name0") == "plain-Name0"


def test_decode_refuses_what_encode_never_makes() -> None:
    with pytest.raises(ValueError):
        PERCENT.decode("a.b")


@pytest.mark.parametrize("safe,escape,separator", [
    ("abc", "%", "."),                                  # no hex digits
    (NameEncoding.ALPHANUMERIC + "%", "%", "."),        # escape is safe
    (NameEncoding.ALPHANUMERIC + ".", "%", "."),        # separator is safe
    (NameEncoding.ALPHANUMERIC, "%", "%"),              # separator is the escape
    (NameEncoding.ALPHANUMERIC, "%%", "."),             # escape of two characters
])
def test_encodings_that_would_not_be_injective_are_refused(safe: str, escape: str,
                                                            separator: str) -> None:
    with pytest.raises(ValueError):
        NameEncoding(safe, escape, separator)


def test_bounded() -> None:
    assert bounded("short", 255, "x.q.") == "short"
    long = "q." + "a" * 300
    stand_in = bounded(long, 255, "x.q.")
    assert stand_in.startswith("x.q.") and len(stand_in) == 4 + 64
    assert bounded(long + "b", 255, "x.q.") != stand_in
    assert bounded("é" * 128, 255, "x.") != "é" * 128   # 256 bytes in UTF-8
