"""AMQP 0-9-1 data types: strings, field tables, method arguments, message
properties (encoding and decoding, no I/O).

Method arguments are described by a *spec*, one letter per field in wire
order: ``o`` octet, ``h`` short (16 bits), ``l`` long (32), ``L`` long long
(64), ``s`` short string, ``S`` long string (bytes), ``F`` field table, ``b``
bit (consecutive bits share octets, as the specification packs them).

Field-table values follow RabbitMQ's reading of the specification (its
errata): ``t`` bool, ``b``/``B`` signed/unsigned 8 bits, ``s``/``u`` 16,
``I``/``i`` 32, ``l`` signed 64, ``f``/``d`` floats, ``D`` decimal, ``S`` long
string, ``A`` array, ``T`` timestamp, ``F`` table, ``V`` void, ``x`` bytes.
Python values are written as ``t`` (bool), ``I`` or ``l`` (int), ``d``
(float), ``S`` (str, bytes), ``A`` (list, tuple), ``F`` (dict), ``V`` (None),
``T`` (datetime).
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Callable, Sequence
from typing import Any

from rpccore_rabbit.wire.errors import ProtocolError

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_F64 = struct.Struct(">d")

#: Fixed-size field-table value types: letter -> (struct, size)
_FIXED = {
    ord("b"): struct.Struct(">b"), ord("B"): _U8, ord("s"): struct.Struct(">h"),
    ord("u"): _U16, ord("I"): _I32, ord("i"): _U32, ord("l"): _I64,
    ord("L"): _U64, ord("f"): struct.Struct(">f"), ord("d"): _F64,
}

#: Basic-class message properties in wire order: (flag bit, name, kind)
PROPERTIES: tuple[tuple[int, str, str], ...] = (
    (1 << 15, "content_type", "s"), (1 << 14, "content_encoding", "s"),
    (1 << 13, "headers", "F"), (1 << 12, "delivery_mode", "o"), (1 << 11, "priority", "o"),
    (1 << 10, "correlation_id", "s"), (1 << 9, "reply_to", "s"),
    (1 << 8, "expiration", "s"), (1 << 7, "message_id", "s"), (1 << 6, "timestamp", "L"),
    (1 << 5, "type", "s"), (1 << 4, "user_id", "s"), (1 << 3, "app_id", "s"),
    (1 << 2, "cluster_id", "s"),
)
_PROPERTY_BY_NAME = {name: (flag, kind) for flag, name, kind in PROPERTIES}


def shortstr(text: str | bytes) -> bytes:
    """A short string: one length octet, then at most 255 bytes.

    :raises ValueError: longer than 255 bytes (AMQP names are limited so).
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {data[:40]!r}...")
    return _U8.pack(len(data)) + data


def longstr(data: str | bytes) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return _U32.pack(len(raw)) + raw


# -- field tables --------------------------------------------------------------

def encode_table(table: dict[str, Any] | None) -> bytes:
    """A field table with its 32-bit size prefix (``None``: empty)."""
    if not table:
        return b"\x00\x00\x00\x00"
    body = b"".join(shortstr(key) + _encode_value(value) for key, value in table.items())
    return _U32.pack(len(body)) + body


def _encode_value(value: Any) -> bytes:
    if isinstance(value, bool):  # before int: bool is an int
        return b"t" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -(1 << 31) <= value < (1 << 31):
            return b"I" + _I32.pack(value)
        return b"l" + _I64.pack(value)
    if isinstance(value, float):
        return b"d" + _F64.pack(value)
    if isinstance(value, str | bytes):
        return b"S" + longstr(value)
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, list | tuple):
        items = b"".join(_encode_value(item) for item in value)
        return b"A" + _U32.pack(len(items)) + items
    if value is None:
        return b"V"
    if isinstance(value, datetime.datetime):
        return b"T" + _U64.pack(int(value.timestamp()))
    raise ValueError(f"cannot put a {type(value).__name__} in an AMQP field table")


def decode_table(buf: bytes, pos: int) -> tuple[dict[str, Any], int]:
    """The field table at ``pos`` and the position after it.

    :raises ProtocolError: malformed or truncated.
    """
    try:
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        end = pos + size
        if end > len(buf):
            raise ProtocolError("field table runs past its frame")
        table: dict[str, Any] = {}
        while pos < end:
            key_size = buf[pos]
            key = buf[pos + 1:pos + 1 + key_size].decode("utf-8", "replace")
            table[key], pos = _decode_value(buf, pos + 1 + key_size)
        if pos != end:
            raise ProtocolError("field table size does not match its contents")
        return table, end
    except (struct.error, IndexError) as exc:
        raise ProtocolError(f"truncated field table: {exc}") from None


def _decode_value(buf: bytes, pos: int) -> tuple[Any, int]:
    kind = buf[pos]
    pos += 1
    fixed = _FIXED.get(kind)
    if fixed is not None:
        return fixed.unpack_from(buf, pos)[0], pos + fixed.size
    decode = _DECODERS.get(kind)
    if decode is None:
        raise ProtocolError(f"unknown field table value type {chr(kind)!r}")
    return decode(buf, pos)


def _long_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    (size,) = _U32.unpack_from(buf, pos)
    raw = bytes(buf[pos + 4:pos + 4 + size])
    if len(raw) != size:
        raise ProtocolError("long string runs past its frame")
    return raw, pos + 4 + size


def _long_string(buf: bytes, pos: int) -> tuple[Any, int]:
    raw, end = _long_bytes(buf, pos)
    try:
        return raw.decode("utf-8"), end
    except UnicodeDecodeError:
        return raw, end


def _array(buf: bytes, pos: int) -> tuple[list[Any], int]:
    (size,) = _U32.unpack_from(buf, pos)
    pos += 4
    end = pos + size
    items = []
    while pos < end:
        item, pos = _decode_value(buf, pos)
        items.append(item)
    return items, end


def _timestamp(buf: bytes, pos: int) -> tuple[datetime.datetime, int]:
    (seconds,) = _U64.unpack_from(buf, pos)  # seconds since the epoch
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC), pos + 8


def _decimal(buf: bytes, pos: int) -> tuple[decimal.Decimal, int]:
    scale = buf[pos]  # a scale octet, then a 32-bit value
    (raw_value,) = _I32.unpack_from(buf, pos + 1)
    return decimal.Decimal(raw_value).scaleb(-scale), pos + 5


#: field table values of variable size, by type octet
_DECODERS: dict[int, Callable[[bytes, int], tuple[Any, int]]] = {
    0x53: _long_string,                              # S
    0x78: _long_bytes,                               # x: byte array
    0x74: lambda buf, pos: (bool(buf[pos]), pos + 1),  # t
    0x46: decode_table,                              # F
    0x41: _array,                                    # A
    0x54: _timestamp,                                # T
    0x44: _decimal,                                  # D
    0x56: lambda buf, pos: (None, pos),              # V
}


# -- method arguments ----------------------------------------------------------

#: how each non-bit field kind is written (see the module docstring)
_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "o": _U8.pack, "h": _U16.pack, "l": _U32.pack, "L": _U64.pack,
    "s": shortstr, "S": longstr, "F": encode_table,
}


def encode_args(spec: str, values: Sequence[Any]) -> bytes:
    """Method arguments laid out by ``spec`` (see the module docstring).

    :raises ValueError: a value does not fit its field.
    """
    if len(spec) != len(values):
        raise ValueError(f"{len(values)} values for the {len(spec)} fields of {spec!r}")
    out = bytearray()
    bits = 0
    bit_count = 0
    for kind, value in zip(spec, values, strict=True):
        if kind == "b":
            if bit_count == 8:
                out.append(bits)
                bits = bit_count = 0
            bits |= (1 << bit_count) if value else 0
            bit_count += 1
            continue
        if bit_count:
            out.append(bits)
            bits = bit_count = 0
        encode = _ENCODERS.get(kind)
        if encode is None:
            raise ValueError(f"unknown field kind {kind!r}")
        out += encode(value)
    if bit_count:
        out.append(bits)
    return bytes(out)


def decode_args(spec: str, buf: bytes, pos: int) -> list[Any]:
    """Method arguments laid out by ``spec``, read from ``buf`` at ``pos``.

    :raises ProtocolError: truncated or malformed.
    """
    values: list[Any] = []
    bit_index = 8
    bits = 0
    try:
        for kind in spec:
            if kind == "b":
                if bit_index == 8:
                    bits = buf[pos]
                    pos += 1
                    bit_index = 0
                values.append(bool(bits & (1 << bit_index)))
                bit_index += 1
                continue
            bit_index = 8
            if kind == "o":
                values.append(buf[pos])
                pos += 1
            elif kind == "h":
                values.append(_U16.unpack_from(buf, pos)[0])
                pos += 2
            elif kind == "l":
                values.append(_U32.unpack_from(buf, pos)[0])
                pos += 4
            elif kind == "L":
                values.append(_U64.unpack_from(buf, pos)[0])
                pos += 8
            elif kind == "s":
                size = buf[pos]
                values.append(bytes(buf[pos + 1:pos + 1 + size]).decode("utf-8", "replace"))
                pos += 1 + size
            elif kind == "S":
                (size,) = _U32.unpack_from(buf, pos)
                values.append(bytes(buf[pos + 4:pos + 4 + size]))
                pos += 4 + size
            elif kind == "F":
                table, pos = decode_table(buf, pos)
                values.append(table)
    except (struct.error, IndexError) as exc:
        raise ProtocolError(f"truncated method arguments: {exc}") from None
    return values


# -- message properties --------------------------------------------------------

def encode_properties(properties: dict[str, Any]) -> tuple[int, bytes]:
    """The property flags and the property list of a content header.

    :raises ValueError: an unknown property, or a value that does not fit.
    """
    unknown = set(properties) - _PROPERTY_BY_NAME.keys()
    if unknown:
        raise ValueError(f"unknown message properties: {sorted(unknown)}")
    flags = 0
    out = bytearray()
    for flag, name, kind in PROPERTIES:
        value = properties.get(name)
        if value is None:
            continue
        flags |= flag
        if kind == "s":
            out += shortstr(value)
        elif kind == "o":
            out.append(int(value))
        elif kind == "F":
            out += encode_table(value)
        else:
            out += _U64.pack(int(value))
    return flags, bytes(out)


def decode_properties(buf: bytes, pos: int) -> dict[str, Any]:
    """The properties of a content header whose flags are at ``pos``.

    :raises ProtocolError: truncated or malformed.
    """
    try:
        (flags,) = _U16.unpack_from(buf, pos)
        pos += 2
        properties: dict[str, Any] = {}
        if not flags:
            return properties
        for flag, name, kind in PROPERTIES:
            if not flags & flag:
                continue
            if kind == "s":
                size = buf[pos]
                properties[name] = bytes(buf[pos + 1:pos + 1 + size]).decode("utf-8",
                                                                              "replace")
                pos += 1 + size
            elif kind == "o":
                properties[name] = buf[pos]
                pos += 1
            elif kind == "F":
                properties[name], pos = decode_table(buf, pos)
            else:
                properties[name] = _U64.unpack_from(buf, pos)[0]
                pos += 8
        return properties
    except (struct.error, IndexError) as exc:
        raise ProtocolError(f"truncated message properties: {exc}") from None
