"""The rabbit driver's own AMQP 0-9-1 frames (rpccore_rabbit.wire.frames):
what publish_frames writes, what FrameParser reads back, whole or in pieces.
py-amqp (installed for the tests only) decodes what we encode."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from amqp.serialization import loads

from rpccore_rabbit.wire import codec, frames
from rpccore_rabbit.wire.errors import ProtocolError


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, pos)
        assert data[pos + 7 + size] == 0xCE
        out.append((kind, channel, data[pos + 7:pos + 7 + size]))
        pos += 8 + size
    return out


def _content(channel: int, method: bytes, body: bytes, props: dict[str, Any],
             frame_max: int = 4096) -> bytes:
    """A method frame followed by the header and body frames of ``body``."""
    published = frames.publish_frames(channel, "ex", "key", True, body, props, frame_max)
    first = _frames(published)[0]
    return (struct.pack(">BHI", 1, channel, len(method)) + method + b"\xce"
            + published[8 + len(first[2]):])


def _deliver(channel: int, consumer_tag: str, delivery_tag: int, body: bytes,
             props: dict[str, Any], redelivered: bool = False) -> bytes:
    tag = consumer_tag.encode()
    args = (struct.pack(">HH", 60, 60) + bytes((len(tag),)) + tag
            + struct.pack(">QB", delivery_tag, int(redelivered)) + b"\x02ex" + b"\x03key")
    return _content(channel, args, body, props)


def test_publish_frames_match_the_amqp_layout() -> None:
    body = bytes(range(256)) * 40  # 10,240 bytes: three body frames at frame_max 4096
    data = frames.publish_frames(5, "nova", "t.a%2Eb", True, body,
                                 {"delivery_mode": 2, "reply_to": "r", "expiration": "1000",
                                  "message_id": "7", "headers": {"k": 1}}, 4096)
    parts = _frames(data)
    assert [f[0] for f in parts] == [1, 2, 3, 3, 3]
    assert all(f[1] == 5 for f in parts)
    method = parts[0][2]
    assert struct.unpack_from(">HH", method) == (60, 40)
    ticket, exchange, key, mandatory, immediate = loads("Bssbb", method, 4)[0]
    assert (exchange, key, mandatory, immediate) == ("nova", "t.a%2Eb", True, False)
    class_id, _, size = struct.unpack_from(">HHQ", parts[1][2])
    assert (class_id, size) == (60, len(body))
    assert codec.decode_properties(parts[1][2], 12) == {
        "delivery_mode": 2, "reply_to": "r", "expiration": "1000", "message_id": "7",
        "headers": {"k": 1}}
    assert b"".join(f[2] for f in parts[2:]) == body
    assert all(len(f[2]) <= 4096 - 8 for f in parts[2:])


def test_publish_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError):
        frames.publish_frames(1, "x" * 256, "k", True, b"", {}, 4096)
    with pytest.raises(ValueError):
        frames.publish_frames(1, "x", "k", True, b"", {"colour": "blue"}, 4096)


def test_ack_and_method_frames() -> None:
    (frame,) = _frames(frames.ack_frame(3, 2**40 + 5, multiple=True))
    assert frame[:2] == (1, 3)
    assert struct.unpack(">HHQB", frame[2]) == (60, 80, 2**40 + 5, 1)
    (frame,) = _frames(frames.method_frame(2, "basic.reject", 9, True))
    assert struct.unpack(">HHQB", frame[2]) == (60, 90, 9, 1)
    assert frames.method_frame(0, "connection.close_ok") == b"\x01\x00\x00\x00\x00\x00\x04" \
        b"\x00\x0a\x00\x33\xce"


@pytest.mark.parametrize("piece", [1, 7, 100, 1 << 20])
def test_parser_returns_events_in_order_whatever_the_pieces(piece: int) -> None:
    big = b"z" * 9000
    stream = (_deliver(2, "ctag", 1, b"hello", {"reply_to": "rq", "delivery_mode": 1})
              + struct.pack(">BHI", 1, 1, 13) + struct.pack(">HHQB", 60, 80, 4, 1) + b"\xce"
              + frames.HEARTBEAT
              + _deliver(2, "ctag", 2, big, {"headers": {"x-delivery-count": 3}}, True)
              + _deliver(2, "ctag", 3, b"", {})
              + struct.pack(">BHI", 1, 1, 13) + struct.pack(">HHQB", 60, 120, 5, 0) + b"\xce"
              + frames.method_frame(3, "queue.declare_ok", "q", 5, 1))
    parser = frames.FrameParser()
    events = []
    for start in range(0, len(stream), piece):
        events += parser.feed(stream[start:start + piece])
    assert events == [
        (2, "basic.deliver", ["ctag", 1, False], ({"delivery_mode": 1, "reply_to": "rq"},
                                                   b"hello")),
        (1, "basic.ack", [4, True], None),
        (2, "basic.deliver", ["ctag", 2, True], ({"headers": {"x-delivery-count": 3}}, big)),
        (2, "basic.deliver", ["ctag", 3, False], ({}, b"")),
        (1, "basic.nack", [5, False], None),
        (3, "queue.declare_ok", ["q", 5, 1], None),
    ]
    assert parser.feed(b"") == []


def test_parser_reads_returns_with_their_properties() -> None:
    args = struct.pack(">HHH", 60, 50, 312) + b"\x05NO_RT" + b"\x02ex" + b"\x03key"
    events = frames.FrameParser().feed(_content(1, args, b"body", {"message_id": "9"}))
    assert events == [(1, "basic.return", [312, "NO_RT", "ex", "key"],
                       ({"message_id": "9"}, b"body"))]


def test_parser_refuses_a_corrupt_stream() -> None:
    with pytest.raises(ProtocolError):
        frames.FrameParser().feed(frames.HEARTBEAT[:-1] + b"\x00")
    with pytest.raises(ProtocolError):      # a body frame outside any message
        frames.FrameParser().feed(struct.pack(">BHI", 3, 1, 1) + b"x\xce")
    with pytest.raises(ProtocolError):      # an unknown method
        frames.FrameParser().feed(struct.pack(">BHI", 1, 1, 4) + struct.pack(">HH", 99, 1)
                                  + b"\xce")
    with pytest.raises(ProtocolError):      # a header frame on another channel
        frames.FrameParser().feed(_deliver(2, "c", 1, b"x", {})
                                  .replace(b"\x02\x00\x02", b"\x02\x00\x07", 1))


def test_every_method_has_a_distinct_id() -> None:
    ids = [(c, m) for c, m, _ in frames.METHODS.values()]
    assert len(ids) == len(set(ids))
    assert all(name.split(".")[0] in ("connection", "channel", "exchange", "queue", "basic",
                                      "confirm") for name in frames.METHODS)
