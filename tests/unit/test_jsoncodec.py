"""The JSON codec: orjson's speed must never change what the standard
library's rules accept, refuse or decode."""

from __future__ import annotations

import enum
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpccore import jsoncodec


def test_orjson_is_installed() -> None:
    # a dependency of rpccore: without it every test below compares the
    # standard library with itself
    assert jsoncodec.orjson is not None

# values orjson takes (so its own path is what runs), NaN and infinity included
CLEAN = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers(-2**63, 2**64 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=12)
# and anything the standard library may take or refuse
SCALARS = (st.none() | st.booleans() | st.floats() | st.integers()
           | st.integers(min_value=2**62, max_value=2**70) | st.text()
           | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF))
KEYS = st.text(max_size=5) | st.integers() | st.booleans() | st.none() | st.floats()
VALUES = CLEAN | st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                              | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


def outcome(fn: Any, value: Any) -> tuple[str, str]:
    """What ``fn(value)`` gives, comparable across codecs: the decoded value's
    repr (NaN compares by repr), or the kind of error."""
    try:
        result = fn(value)
    except (TypeError, ValueError, RecursionError) as exc:
        kind = "TypeError" if isinstance(exc, TypeError) else "ValueError"
        return ("error", kind)
    if isinstance(result, bytes):
        result = jsoncodec.std_loads(result)
    return ("ok", repr(result))


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_dumps_accepts_and_refuses_as_the_standard_library(value: Any) -> None:
    assert outcome(jsoncodec.dumps, value) == outcome(jsoncodec.std_dumps, value)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_loads_reads_what_the_standard_library_wrote_to_equal_values(value: Any) -> None:
    try:
        data = jsoncodec.std_dumps(value)
    except (TypeError, ValueError):
        return
    assert outcome(jsoncodec.loads, data) == outcome(jsoncodec.std_loads, data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet='{}[]",:0123456789.eE-+ \\ud', max_size=30)
       .map(lambda t: t.encode("utf-8")))
def test_loads_of_any_bytes_is_the_standard_library_s(data: bytes) -> None:
    assert outcome(jsoncodec.loads, data) == outcome(jsoncodec.std_loads, data)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"),
                                   {"a": [1, {"b": float("nan")}]}])
def test_nan_and_infinity_are_refused_not_written_as_null(value: Any) -> None:
    with pytest.raises(ValueError):
        jsoncodec.dumps(value)


def test_integers_beyond_64_bits_stay_exact() -> None:
    big = {"n": 2**64 + 1, "m": -(2**63) - 1, "k": 10**30}
    data = jsoncodec.dumps(big)
    assert jsoncodec.loads(data) == big
    for n in big.values():
        assert type(jsoncodec.loads(str(n).encode())) is int


def test_non_string_keys_and_subclasses_are_encoded_as_the_standard_library_does() -> None:
    class Text(str):
        pass

    class Number(enum.IntEnum):
        ONE = 1

    value = {1: "a", None: "b", False: "c", 1.5: "d", "s": Text("t"), "n": Number.ONE}
    assert jsoncodec.dumps(value) == jsoncodec.std_dumps(value)


def test_what_orjson_encodes_beyond_the_standard_library() -> None:
    # documented in rpccore.jsoncodec: a UUID as its string, a plain enum
    # member as its value
    class Colour(enum.Enum):
        RED = "red"

    ident = uuid.UUID(int=7)
    assert jsoncodec.loads(jsoncodec.dumps([ident, Colour.RED])) == [str(ident), "red"]


def test_an_envelope_without_null_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(obj: Any) -> bytes:
        raise AssertionError("fell back to the standard library")

    monkeypatch.setattr(jsoncodec, "std_dumps", refuse)
    monkeypatch.setattr(jsoncodec, "std_loads", refuse)
    env = {"v": 1, "id": "abc", "kind": "call", "dest": {"topic": "t", "fanout": False},
           "method": "m", "args": {"text": "é€😀", "n": [1, 2.5, True]}, "ctx": {},
           "deadline": 1764150000.25}
    assert jsoncodec.loads(jsoncodec.dumps(env)) == env
