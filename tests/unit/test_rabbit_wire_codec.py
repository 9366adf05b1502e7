"""The rabbit driver's own AMQP 0-9-1 data types (rpccore_rabbit.wire.codec):
round trips, and agreement with an independent implementation (py-amqp's
serializer, installed for the tests only)."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from amqp.serialization import dumps, loads
from hypothesis import given
from hypothesis import strategies as st

from rpccore_rabbit.wire import codec
from rpccore_rabbit.wire.errors import ProtocolError

scalars = (st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1) | st.text(max_size=20)
           | st.floats(allow_nan=False) | st.none())
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
tables = st.dictionaries(st.text(max_size=30), values, max_size=6)


@given(tables)
def test_tables_round_trip(table: dict[str, Any]) -> None:
    data = codec.encode_table(table)
    decoded, end = codec.decode_table(data, 0)
    assert end == len(data)
    assert decoded == table


def test_tables_agree_with_py_amqp() -> None:
    table = {"x-queue-type": "quorum", "x-expires": 3_600_000, "x-delivery-limit": 20,
             "big": 1 << 40, "flag": True, "nested": {"a": [1, "b", False]}, "none": None}
    ours = codec.encode_table(table)
    theirs = loads("F", ours, 0)[0][0]
    assert theirs == table
    encoded_by_them = dumps("F", [table])
    assert codec.decode_table(encoded_by_them, 0)[0] == table


def test_broker_value_types_are_read() -> None:
    # what RabbitMQ puts in headers (x-death) and server properties
    stamp = 1_700_000_000
    body = (b"\x01a" + b"b" + struct.pack(">b", -3) + b"\x01b" + b"u" + struct.pack(">H", 9)
            + b"\x01c" + b"T" + struct.pack(">Q", stamp) + b"\x01d" + b"x" + b"\x00\x00\x00\x02ab"
            + b"\x01e" + b"D" + b"\x02" + struct.pack(">i", 12345)
            + b"\x01f" + b"s" + struct.pack(">h", -2))
    table, _ = codec.decode_table(struct.pack(">I", len(body)) + body, 0)
    assert table["a"] == -3 and table["b"] == 9 and table["f"] == -2
    assert table["c"] == datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    assert table["d"] == b"ab"
    assert str(table["e"]) == "123.45"


def test_malformed_tables_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        codec.decode_table(b"\x00\x00\x00\x10\x01a", 0)           # runs past the end
    with pytest.raises(ProtocolError):
        codec.decode_table(b"\x00\x00\x00\x03\x01a?", 0)          # unknown type
    with pytest.raises(ValueError):
        codec.encode_table({"x": object()})


@given(st.lists(st.booleans(), min_size=1, max_size=20), st.text(max_size=50),
       st.integers(0, (1 << 64) - 1))
def test_arguments_round_trip_with_packed_bits(bits: list[bool], text: str,
                                               number: int) -> None:
    spec = "sL" + "b" * len(bits) + "h"
    values = [text[:80], number, *bits, 7]
    if len(values[0].encode()) > 255:
        return
    data = codec.encode_args(spec, values)
    assert len(data) == 1 + len(values[0].encode()) + 8 + (len(bits) + 7) // 8 + 2
    assert codec.decode_args(spec, data, 0) == values


def test_arguments_agree_with_py_amqp() -> None:
    # queue.declare: ticket, queue, passive, durable, exclusive, auto_delete, nowait,
    # arguments (py-amqp's letter for a 16-bit short is B, ours h)
    values = [0, "rpccore.x.t.topic", False, True, False, False, False, {"x-expires": 5}]
    ours = codec.encode_args("hsbbbbbF", values)
    assert ours == dumps("BsbbbbbF", values)
    assert loads("BsbbbbbF", ours, 0)[0] == values


def test_short_strings_are_bounded() -> None:
    assert codec.shortstr("é") == b"\x02\xc3\xa9"
    with pytest.raises(ValueError):
        codec.shortstr("x" * 256)


@given(st.fixed_dictionaries({}, optional={
    "content_type": st.text(max_size=10), "headers": tables,
    "delivery_mode": st.integers(1, 2), "priority": st.integers(0, 9),
    "correlation_id": st.text(max_size=10), "reply_to": st.text(max_size=40),
    "expiration": st.text("0123456789", max_size=6), "message_id": st.text(max_size=10),
    "timestamp": st.integers(0, 1 << 40), "app_id": st.text(max_size=5)}))
def test_properties_round_trip(properties: dict[str, Any]) -> None:
    flags, data = codec.encode_properties(properties)
    decoded = codec.decode_properties(struct.pack(">H", flags) + data, 0)
    assert decoded == properties


def test_unknown_properties_are_refused() -> None:
    with pytest.raises(ValueError):
        codec.encode_properties({"colour": "blue"})
