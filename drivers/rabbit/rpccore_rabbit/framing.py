"""Hand-built AMQP 0-9-1 frames for the two hot paths: ``basic.publish`` and
``basic.ack``.

py-amqp's generic serializer costs more than everything else the driver does
per message; these two methods have fixed layouts, so the I/O thread builds
their bytes directly and writes them in one call. Everything else (and all
reading) stays with py-amqp. Only the message properties this driver sends
are supported: ``delivery_mode``, ``reply_to``, ``expiration``,
``message_id``, ``correlation_id``.
"""

from __future__ import annotations

import struct
from typing import Any

_FRAME_END = b"\xce"
_HEADER = struct.Struct(">BHI")
_PUBLISH_METHOD = struct.pack(">HHH", 60, 40, 0)      # basic.publish, reserved ticket
_ACK = struct.Struct(">BHIHHQB")                    # frame header + basic.ack args
_CONTENT_HEADER = struct.Struct(">HHQH")            # class, weight, body size, flags

# Property flag bits of the basic class, in wire order.
_FLAG_CORRELATION_ID = 1 << 10
_FLAG_REPLY_TO = 1 << 9
_FLAG_EXPIRATION = 1 << 8
_FLAG_MESSAGE_ID = 1 << 7
_FLAG_DELIVERY_MODE = 1 << 12


def _shortstr(text: str) -> bytes:
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {text[:40]!r}...")
    return bytes((len(data),)) + data


def publish_frames(channel: int, exchange: str, routing_key: str, mandatory: bool,
                   body: bytes, properties: dict[str, Any], frame_max: int) -> bytes:
    """The method, header and body frames of one ``basic.publish``.

    :raises ValueError: a name longer than 255 bytes, an unsupported property.
    """
    args = (_PUBLISH_METHOD + _shortstr(exchange) + _shortstr(routing_key)
            + (b"\x01" if mandatory else b"\x00"))
    flags = 0
    props = b""
    delivery_mode = properties.get("delivery_mode")
    if delivery_mode is not None:
        flags |= _FLAG_DELIVERY_MODE
        props += bytes((int(delivery_mode),))
    for key, flag in (("correlation_id", _FLAG_CORRELATION_ID), ("reply_to", _FLAG_REPLY_TO),
                      ("expiration", _FLAG_EXPIRATION), ("message_id", _FLAG_MESSAGE_ID)):
        value = properties.get(key)
        if value is not None:
            flags |= flag
            props += _shortstr(value)
    unknown = set(properties) - {"delivery_mode", "correlation_id", "reply_to",
                                 "expiration", "message_id"}
    if unknown:
        raise ValueError(f"unsupported message properties: {sorted(unknown)}")
    header = _CONTENT_HEADER.pack(60, 0, len(body), flags) + props
    parts = [_HEADER.pack(1, channel, len(args)), args, _FRAME_END,
             _HEADER.pack(2, channel, len(header)), header, _FRAME_END]
    chunk = frame_max - 8 if frame_max else len(body) or 1
    for start in range(0, len(body), chunk):
        piece = body[start:start + chunk]
        parts += [_HEADER.pack(3, channel, len(piece)), piece, _FRAME_END]
    return b"".join(parts)


def ack_frame(channel: int, delivery_tag: int, multiple: bool = False) -> bytes:
    """One ``basic.ack`` method frame."""
    return _ACK.pack(1, channel, 13, 60, 80, delivery_tag, 1 if multiple else 0) + _FRAME_END
