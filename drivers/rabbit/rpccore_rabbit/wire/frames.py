"""AMQP 0-9-1 frames: the methods this client uses, frames built from them,
and :class:`FrameParser`, which turns the bytes a broker sends into events.

The two hot paths are built by hand: :func:`publish_frames` (method, content
header and body frames of one ``basic.publish``) and :func:`ack_frame`; the
parser decodes ``basic.deliver``, ``basic.ack`` and ``basic.nack`` without the
generic argument decoder. Everything else goes through :data:`METHODS`.
"""

from __future__ import annotations

import struct
from typing import Any

from rpccore_rabbit.wire.codec import (
    decode_args,
    decode_properties,
    encode_args,
    encode_properties,
    shortstr,
)
from rpccore_rabbit.wire.errors import ProtocolError

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"

#: name -> (class id, method id, argument spec; see :mod:`.codec`)
METHODS: dict[str, tuple[int, int, str]] = {
    "connection.start": (10, 10, "ooFSS"), "connection.start_ok": (10, 11, "FsSs"),
    "connection.secure": (10, 20, "S"), "connection.secure_ok": (10, 21, "S"),
    "connection.tune": (10, 30, "hlh"), "connection.tune_ok": (10, 31, "hlh"),
    "connection.open": (10, 40, "ssb"), "connection.open_ok": (10, 41, "s"),
    "connection.close": (10, 50, "hshh"), "connection.close_ok": (10, 51, ""),
    "connection.blocked": (10, 60, "s"), "connection.unblocked": (10, 61, ""),
    "channel.open": (20, 10, "s"), "channel.open_ok": (20, 11, "S"),
    "channel.flow": (20, 20, "b"), "channel.flow_ok": (20, 21, "b"),
    "channel.close": (20, 40, "hshh"), "channel.close_ok": (20, 41, ""),
    "exchange.declare": (40, 10, "hssbbbbbF"), "exchange.declare_ok": (40, 11, ""),
    "exchange.delete": (40, 20, "hsbb"), "exchange.delete_ok": (40, 21, ""),
    "queue.declare": (50, 10, "hsbbbbbF"), "queue.declare_ok": (50, 11, "sll"),
    "queue.bind": (50, 20, "hsssbF"), "queue.bind_ok": (50, 21, ""),
    "queue.purge": (50, 30, "hsb"), "queue.purge_ok": (50, 31, "l"),
    "queue.delete": (50, 40, "hsbbb"), "queue.delete_ok": (50, 41, "l"),
    "queue.unbind": (50, 50, "hsssF"), "queue.unbind_ok": (50, 51, ""),
    "basic.qos": (60, 10, "lhb"), "basic.qos_ok": (60, 11, ""),
    "basic.consume": (60, 20, "hssbbbbF"), "basic.consume_ok": (60, 21, "s"),
    "basic.cancel": (60, 30, "sb"), "basic.cancel_ok": (60, 31, "s"),
    "basic.publish": (60, 40, "hssbb"), "basic.return": (60, 50, "hsss"),
    "basic.deliver": (60, 60, "sLbss"), "basic.get": (60, 70, "hsb"),
    "basic.get_ok": (60, 71, "Lbssl"), "basic.get_empty": (60, 72, "s"),
    "basic.ack": (60, 80, "Lb"), "basic.reject": (60, 90, "Lb"),
    "basic.recover": (60, 110, "b"), "basic.recover_ok": (60, 111, ""),
    "basic.nack": (60, 120, "Lbb"),
    "confirm.select": (85, 10, "b"), "confirm.select_ok": (85, 11, ""),
}
#: (class id, method id) -> (name, argument spec)
BY_ID: dict[tuple[int, int], tuple[str, str]] = {
    (class_id, method_id): (name, spec) for name, (class_id, method_id, spec) in METHODS.items()}
#: Methods followed by a content header and body frames.
WITH_CONTENT = frozenset({"basic.deliver", "basic.return", "basic.get_ok"})

#: ``(channel, method name, arguments, content)``: content is ``(properties,
#: body)`` for the methods in :data:`WITH_CONTENT`, else None.
Event = tuple[int, str, list[Any], "tuple[dict[str, Any], bytes] | None"]

_HEADER = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">HH")
_U64 = struct.Struct(">Q")
_ACK = struct.Struct(">BHIHHQB")
_CONTENT_HEADER = struct.Struct(">HHQ")
_PUBLISH_METHOD = struct.pack(">HHH", 60, 40, 0)       # basic.publish, reserved ticket
_DELIVER = (60, 60)
_ACK_ID = (60, 80)
_NACK_ID = (60, 120)


def method_frame(channel: int, name: str, *args: Any) -> bytes:
    """One method frame.

    :raises KeyError: an unknown method; :raises ValueError: bad arguments.
    """
    class_id, method_id, spec = METHODS[name]
    payload = _METHOD_ID.pack(class_id, method_id) + encode_args(spec, args)
    return _HEADER.pack(FRAME_METHOD, channel, len(payload)) + payload + b"\xce"


def publish_frames(channel: int, exchange: str, routing_key: str, mandatory: bool,
                   body: bytes, properties: dict[str, Any], frame_max: int) -> bytes:
    """The method, content header and body frames of one ``basic.publish``.

    :raises ValueError: a name longer than 255 bytes, an unknown property.
    """
    args = (_PUBLISH_METHOD + shortstr(exchange) + shortstr(routing_key)
            + (b"\x01" if mandatory else b"\x00"))
    flags, props = encode_properties(properties)
    header = _CONTENT_HEADER.pack(60, 0, len(body)) + struct.pack(">H", flags) + props
    parts = [_HEADER.pack(FRAME_METHOD, channel, len(args)), args, b"\xce",
             _HEADER.pack(FRAME_HEADER, channel, len(header)), header, b"\xce"]
    chunk = frame_max - 8 if frame_max else len(body) or 1
    for start in range(0, len(body), chunk):
        piece = body[start:start + chunk]
        parts += [_HEADER.pack(FRAME_BODY, channel, len(piece)), piece, b"\xce"]
    return b"".join(parts)


def ack_frame(channel: int, delivery_tag: int, multiple: bool = False) -> bytes:
    """One ``basic.ack`` method frame."""
    return _ACK.pack(FRAME_METHOD, channel, 13, 60, 80, delivery_tag,
                     1 if multiple else 0) + b"\xce"


class FrameParser:
    """Splits the bytes a broker sends into :data:`Event` tuples.

    A method with content is returned only once its header and every body
    frame have arrived; bytes of an incomplete frame or message wait for the
    next :meth:`feed`. Heartbeat frames produce no event (any bytes received
    show the broker is alive).
    """

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[Event]:
        """Every complete event in what was kept plus ``data``.

        :raises ProtocolError: a corrupt stream (the connection must go).
        """
        buf = self._buf + data if self._buf else data
        events: list[Event] = []
        pos, total = 0, len(buf)
        while total - pos >= 8:
            frame_type, channel, size = _HEADER.unpack_from(buf, pos)
            end = pos + 7 + size
            if end >= total:
                break
            if buf[end] != FRAME_END:
                raise ProtocolError(f"bad frame end {buf[end]:#04x}")
            if frame_type == FRAME_METHOD:
                event, next_pos = self._method(buf, pos + 7, end, total, channel)
                if event is None:
                    break  # the rest of a message has not arrived yet
                events.append(event)
                pos = next_pos
                continue
            if frame_type != FRAME_HEARTBEAT:
                raise ProtocolError(f"frame type {frame_type} on channel {channel} "
                                    "outside a message")
            pos = end + 1
        self._buf = buf[pos:]
        return events

    def _method(self, buf: bytes, start: int, end: int, total: int,
                channel: int) -> tuple[Event | None, int]:
        key = _METHOD_ID.unpack_from(buf, start)
        if key == _ACK_ID or key == _NACK_ID:
            (tag,) = _U64.unpack_from(buf, start + 4)
            flags = buf[start + 12]
            name = "basic.ack" if key == _ACK_ID else "basic.nack"
            return (channel, name, [tag, bool(flags & 1)], None), end + 1
        if key == _DELIVER:
            size = buf[start + 4]
            tag_end = start + 5 + size
            consumer_tag = bytes(buf[start + 5:tag_end]).decode("utf-8", "replace")
            (delivery_tag,) = _U64.unpack_from(buf, tag_end)
            args: list[Any] = [consumer_tag, delivery_tag, bool(buf[tag_end + 8] & 1)]
            name = "basic.deliver"
        else:
            known = BY_ID.get(key)
            if known is None:
                raise ProtocolError(f"unknown method {key[0]}.{key[1]} on channel {channel}")
            name, spec = known
            args = decode_args(spec, buf, start + 4)
            if name not in WITH_CONTENT:
                return (channel, name, args, None), end + 1
        content = _content(buf, end + 1, total, channel)
        if content is None:
            return None, 0
        properties, body, next_pos = content
        return (channel, name, args, (properties, body)), next_pos


def _content(buf: bytes, pos: int, total: int,
             channel: int) -> tuple[dict[str, Any], bytes, int] | None:
    """The header and body frames at ``pos``: (properties, body, position
    after them), or None when not all of them are there yet."""
    end = _frame_end(buf, pos, total, FRAME_HEADER, channel)
    if end is None:
        return None
    (body_size,) = _U64.unpack_from(buf, pos + 11)
    properties = decode_properties(buf, pos + 19)
    pos = end + 1
    parts = []
    got = 0
    while got < body_size:
        end = _frame_end(buf, pos, total, FRAME_BODY, channel)
        if end is None:
            return None
        parts.append(buf[pos + 7:end])
        got += end - pos - 7
        pos = end + 1
    body = bytes(parts[0]) if len(parts) == 1 else b"".join(parts)  # b"" for none
    return properties, body, pos


def _frame_end(buf: bytes, pos: int, total: int, expected_type: int,
               channel: int) -> int | None:
    """Where the frame at ``pos`` ends (its frame-end octet), or None when it
    has not all arrived.

    :raises ProtocolError: not a frame of ``expected_type`` on ``channel``.
    """
    if total - pos < 8:
        return None
    frame_type, frame_channel, size = _HEADER.unpack_from(buf, pos)
    end: int = pos + 7 + size
    if end >= total:
        return None
    if frame_type != expected_type or frame_channel != channel:
        raise ProtocolError(f"frame type {frame_type} on channel {frame_channel} where "
                            f"type {expected_type} for channel {channel} was due")
    if buf[end] != FRAME_END:
        raise ProtocolError(f"bad frame end {buf[end]:#04x}")
    return end
