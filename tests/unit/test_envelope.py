"""The wire envelope: encoding, limits, signing and a fuzzed decoder."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpccore import envelope
from rpccore.errors import InvalidMessage

MAX = 1024 * 1024


def request(**extra: object) -> dict[str, object]:
    env: dict[str, object] = {"v": 1, "id": "abc", "kind": "call", "method": "m",
                              "args": {"a": 1}, "ctx": {}, "deadline": None}
    env.update(extra)
    return env


def test_round_trip() -> None:
    env = request(args={"text": "é€😀", "n": [1, 2.5, None, True]})
    assert envelope.decode(envelope.encode(env, max_size=MAX), max_size=MAX) == env


def test_encode_refuses_what_json_cannot_carry() -> None:
    for bad in ({1, 2}, b"bytes", object(), float("nan")):
        with pytest.raises(InvalidMessage):
            envelope.encode(request(args={"x": bad}), max_size=MAX)


def test_size_is_checked_on_both_sides() -> None:
    with pytest.raises(InvalidMessage, match="max_message_size"):
        envelope.encode(request(args={"x": "y" * 2000}), max_size=1000)
    body = envelope.encode(request(args={"x": "y" * 2000}), max_size=MAX)
    with pytest.raises(InvalidMessage, match="max_message_size"):
        envelope.decode(body, max_size=1000)


def test_signed_envelope_verifies_and_is_still_json() -> None:
    body = envelope.encode(request(), max_size=MAX, key=b"k")
    assert json.loads(body)["env"]["id"] == "abc"
    assert envelope.decode(body, max_size=MAX, key=b"k")["id"] == "abc"


@pytest.mark.parametrize("mangle", [
    lambda b: envelope.encode(request(), max_size=MAX),             # unsigned
    lambda b: b.replace(b'"m"', b'"x"'),                            # tampered body
    lambda b: b[:10] + (b"0" if b[10:11] != b"0" else b"1") + b[11:],  # tampered signature
    lambda b: envelope.encode(request(), max_size=MAX, key=b"other"),  # other key
    lambda b: b[:-1],
])
def test_unsigned_or_tampered_envelopes_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    body = envelope.encode(request(), max_size=MAX, key=b"k")
    with pytest.raises(envelope.BadSignature):
        envelope.decode(mangle(body), max_size=MAX, key=b"k")


def test_newer_major_version_is_refused_clearly() -> None:
    body = json.dumps(request(v=2)).encode()
    with pytest.raises(envelope.UnsupportedVersion, match="upgrade rpccore"):
        envelope.decode(body, max_size=MAX)


def test_unknown_fields_are_ignored() -> None:
    body = json.dumps(request(future_field={"x": 1})).encode()
    assert envelope.decode(body, max_size=MAX)["method"] == "m"


@pytest.mark.parametrize("body", [
    b"", b"null", b"[]", b"{}", b'{"v":"1"}', b'{"v":1,"kind":"call"}', b"\xff\xfe",
    b'{"v":1,"id":"x","kind":"call","method":"m","args":[],"ctx":{}}',
    b'{"v":1,"id":"x","kind":"call","method":"m","args":{},"ctx":{},"deadline":"soon"}',
    b'{"v":1,"id":"x","kind":"reply","re":"y","failure":{"type":1}}',
    b"[" * 100000,
])
def test_malformed_envelopes_raise_invalid_message(body: bytes) -> None:
    with pytest.raises(InvalidMessage):
        envelope.decode(body, max_size=MAX)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)

fields = st.fixed_dictionaries({}, optional={
    "v": st.one_of(st.integers(-2, 3), st.text(), st.none()),
    "id": st.one_of(st.text(), st.integers()),
    "kind": st.sampled_from(["call", "cast", "reply", "other", ""]),
    "method": json_values, "args": json_values, "ctx": json_values,
    "deadline": json_values, "re": json_values, "failure": json_values,
    "result": json_values,
})


@settings(max_examples=6000, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decoder_with_raw_bytes(body: bytes) -> None:
    for key in (None, b"k"):
        try:
            envelope.decode(body, max_size=200, key=key)
        except InvalidMessage:
            pass


@settings(max_examples=4000, deadline=None)
@given(fields)
def test_fuzz_decoder_with_json_shaped_input(env: dict[str, object]) -> None:
    body = json.dumps(env).encode()
    try:
        decoded = envelope.decode(body, max_size=MAX)
    except InvalidMessage:
        return
    # what passes the decoder is something the server can use without checks
    assert decoded["kind"] in envelope.KINDS and isinstance(decoded["id"], str)
    if decoded["kind"] != "reply":
        assert isinstance(decoded["method"], str)
        assert isinstance(decoded["args"], dict) and isinstance(decoded["ctx"], dict)
