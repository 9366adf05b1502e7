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
from collections.abc import Callable
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


# -- reading -----------------------------------------------------------------

_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_METHOD_ID = struct.Struct(">HH")
_BODY_SIZE = struct.Struct(">Q")
_DELIVER = (60, 60)
_RETURN = (60, 50)
_ACK_ID = (60, 80)
_NACK_ID = (60, 120)
# Property flags this reader decodes itself; with any other the generic
# py-amqp decoder is used.
_SIMPLE_FLAGS = (_FLAG_DELIVERY_MODE | 1 << 11 | _FLAG_CORRELATION_ID | _FLAG_REPLY_TO
                 | _FLAG_EXPIRATION | _FLAG_MESSAGE_ID)

#: ``deliver(consumer_tag, delivery_tag, body, properties)``
DeliverHandler = Callable[[str, int, bytes, dict[str, Any]], None]


def _read_shortstr(buf: bytes, pos: int) -> tuple[str, int]:
    size = buf[pos]
    return buf[pos + 1:pos + 1 + size].decode("utf-8", "replace"), pos + 1 + size


def _properties(buf: bytes) -> dict[str, Any]:
    """The basic properties of a content header frame payload."""
    (flags,) = _U16.unpack_from(buf, 12)
    if flags & ~_SIMPLE_FLAGS:
        from amqp.serialization import decode_properties_basic
        props: dict[str, Any] = decode_properties_basic(buf, 12)[0]
        return props
    props = {}
    pos = 14
    if flags & _FLAG_DELIVERY_MODE:
        props["delivery_mode"] = buf[pos]
        pos += 1
    if flags & 1 << 11:
        props["priority"] = buf[pos]
        pos += 1
    for key, flag in (("correlation_id", _FLAG_CORRELATION_ID), ("reply_to", _FLAG_REPLY_TO),
                      ("expiration", _FLAG_EXPIRATION), ("message_id", _FLAG_MESSAGE_ID)):
        if flags & flag:
            props[key], pos = _read_shortstr(buf, pos)
    return props


class FrameReader:
    """Splits what the socket delivers into frames and dispatches them.

    Deliveries on the consumer channel and acks, nacks and returns on the
    publisher channel are decoded here and handed to the given callbacks;
    every other frame goes to py-amqp's own handler. A content message
    (method, header, body frames) is consumed only once all of it is in the
    buffer, so py-amqp never sees half of one; bytes not consumed go back to
    py-amqp's read buffer, which its own synchronous calls read first.
    """

    def __init__(self, connection: Any, publisher: int, consumer: int,
                 deliver: DeliverHandler, ack: Callable[[int, bool], None],
                 nack: Callable[[int, bool], None], returned: Callable[[str | None], None],
                 ) -> None:
        self.connection = connection
        self.publisher = publisher
        self.consumer = consumer
        self.deliver = deliver
        self.ack = ack
        self.nack = nack
        self.returned = returned

    def feed(self, data: bytes) -> None:
        """Dispatch every complete frame of the read buffer plus ``data``.

        :raises amqp.exceptions.UnexpectedFrame: a corrupt stream.
        """
        conn = self.connection
        transport = conn.transport
        buf = transport._read_buffer + data if transport._read_buffer else data
        events: list[tuple[Any, ...]] = []
        pos, total = 0, len(buf)
        unpack = _HEADER.unpack_from
        while total - pos >= 8:
            frame_type, channel, size = unpack(buf, pos)
            end = pos + 7 + size
            if end >= total:
                break
            if buf[end] != 0xCE:
                import amqp
                raise amqp.exceptions.UnexpectedFrame(f"bad frame end {buf[end]:#04x}")
            if frame_type == 1 and (channel == self.consumer or channel == self.publisher):
                method = _METHOD_ID.unpack_from(buf, pos + 7)
                if method == _DELIVER and channel == self.consumer or \
                        method == _RETURN and channel == self.publisher:
                    content = self._content(buf, end + 1, total, channel)
                    if content is None:
                        break  # wait for the rest of this message
                    props, body, next_pos = content
                    events.append((method, buf[pos + 11:end], props, body))
                    pos = next_pos
                    continue
                if (method == _ACK_ID or method == _NACK_ID) and channel == self.publisher:
                    (tag,) = _U64.unpack_from(buf, pos + 11)
                    events.append((method, tag, bool(buf[pos + 19] & 1)))
                    pos = end + 1
                    continue
            events.append((None, (frame_type, channel, buf[pos + 7:end])))
            pos = end + 1
        transport._read_buffer = buf[pos:]
        on_frame = conn.on_inbound_frame
        for event in events:
            kind = event[0]
            if kind is None:
                on_frame(event[1])
            elif kind == _ACK_ID:
                conn.bytes_recv += 1
                self.ack(event[1], event[2])
            elif kind == _NACK_ID:
                conn.bytes_recv += 1
                self.nack(event[1], event[2])
            elif kind == _DELIVER:
                conn.bytes_recv += 1
                args = event[1]
                consumer_tag, at = _read_shortstr(args, 0)
                (delivery_tag,) = _U64.unpack_from(args, at)
                self.deliver(consumer_tag, delivery_tag, event[3], event[2])
            else:  # returned
                conn.bytes_recv += 1
                self.returned(event[2].get("message_id"))

    @staticmethod
    def _content(buf: bytes, pos: int, total: int,
                 channel: int) -> tuple[dict[str, Any], bytes, int] | None:
        """Header and body frames starting at ``pos``: (properties, body,
        position after them), or None when not all there yet."""
        end = _frame_end(buf, pos, total, 2, channel, "content header")
        if end is None:
            return None
        header = buf[pos + 7:end]
        (body_size,) = _BODY_SIZE.unpack_from(header, 4)
        props = _properties(header)
        pos = end + 1
        parts = []
        got = 0
        while got < body_size:
            end = _frame_end(buf, pos, total, 3, channel, "content body")
            if end is None:
                return None
            parts.append(buf[pos + 7:end])
            got += end - pos - 7
            pos = end + 1
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return props, body, pos


def _frame_end(buf: bytes, pos: int, total: int, expected_type: int, channel: int,
               what: str) -> int | None:
    """Where the frame at ``pos`` ends (its frame-end octet), or None when it
    has not all arrived.

    :raises amqp.exceptions.UnexpectedFrame: it is not a frame of
        ``expected_type`` on ``channel``.
    """
    if total - pos < 8:
        return None
    frame_type, frame_channel, size = _HEADER.unpack_from(buf, pos)
    end: int = pos + 7 + size
    if end >= total:
        return None
    if frame_type != expected_type or frame_channel != channel:
        import amqp
        raise amqp.exceptions.UnexpectedFrame(
            f"frame type {frame_type} on channel {frame_channel} where a {what} for "
            f"channel {channel} was due")
    return end
