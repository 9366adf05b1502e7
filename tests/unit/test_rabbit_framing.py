"""The rabbit driver's hand-built frames and its frame reader (no network):
what publish_frames writes, FrameReader reads back, whole or in pieces."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from amqp.serialization import loads

from rpccore_rabbit import framing


class FakeTransport:
    def __init__(self) -> None:
        self._read_buffer = b""


class FakeConnection:
    """What FrameReader uses of a py-amqp connection."""

    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.bytes_recv = 0
        self.other: list[tuple[int, int, bytes]] = []

    def on_inbound_frame(self, frame: tuple[int, int, bytes]) -> None:
        self.other.append(frame)


def _frames(data: bytes) -> list[tuple[int, int, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, pos)
        assert data[pos + 7 + size] == 0xCE
        out.append((kind, channel, data[pos + 7:pos + 7 + size]))
        pos += 8 + size
    return out


def _deliver(channel: int, consumer_tag: str, delivery_tag: int, body: bytes,
             props: dict[str, Any], frame_max: int = 4096) -> bytes:
    """A basic.deliver sequence as a broker would send it."""
    published = framing.publish_frames(channel, "ex", "key", True, body, props, frame_max)
    first = _frames(published)[0]
    rest = published[8 + len(first[2]):]
    tag = consumer_tag.encode()
    args = (struct.pack(">HH", 60, 60) + bytes((len(tag),)) + tag
            + struct.pack(">QB", delivery_tag, 0) + b"\x02ex" + b"\x03key")
    return struct.pack(">BHI", 1, channel, len(args)) + args + b"\xce" + rest


def test_publish_frames_match_the_amqp_layout() -> None:
    body = bytes(range(256)) * 40  # 10,240 bytes: three body frames at frame_max 4096
    data = framing.publish_frames(5, "nova", "t.a%2Eb", True, body,
                                  {"delivery_mode": 2, "reply_to": "r", "expiration": "1000",
                                   "message_id": "7"}, 4096)
    frames = _frames(data)
    assert [f[0] for f in frames] == [1, 2, 3, 3, 3]
    assert all(f[1] == 5 for f in frames)
    method = frames[0][2]
    assert struct.unpack_from(">HH", method) == (60, 40)
    ticket, exchange, key, mandatory, immediate = loads("Bssbb", method, 4)[0]
    assert (exchange, key, mandatory, immediate) == ("nova", "t.a%2Eb", True, False)
    class_id, _, size = struct.unpack_from(">HHQ", frames[1][2])
    assert (class_id, size) == (60, len(body))
    assert framing._properties(frames[1][2]) == {
        "delivery_mode": 2, "reply_to": "r", "expiration": "1000", "message_id": "7"}
    assert b"".join(f[2] for f in frames[2:]) == body
    assert all(len(f[2]) <= 4096 - 8 for f in frames[2:])


def test_publish_refuses_what_it_cannot_encode() -> None:
    with pytest.raises(ValueError):
        framing.publish_frames(1, "x" * 256, "k", True, b"", {}, 4096)
    with pytest.raises(ValueError):
        framing.publish_frames(1, "x", "k", True, b"", {"headers": {}}, 4096)


def test_ack_frame() -> None:
    (frame,) = _frames(framing.ack_frame(3, 2**40 + 5, multiple=True))
    assert frame[:2] == (1, 3)
    assert struct.unpack(">HHQB", frame[2]) == (60, 80, 2**40 + 5, 1)


def _reader(conn: FakeConnection, got: dict[str, list[Any]]) -> framing.FrameReader:
    return framing.FrameReader(
        conn, publisher=1, consumer=2,
        deliver=lambda ctag, dtag, body, props: got["deliver"].append((ctag, dtag, body, props)),
        ack=lambda tag, multiple: got["ack"].append((tag, multiple)),
        nack=lambda tag, multiple: got["nack"].append((tag, multiple)),
        returned=lambda message_id: got["return"].append(message_id))


@pytest.mark.parametrize("piece", [1, 7, 100, 1 << 20])
def test_reader_dispatches_in_order_whatever_the_pieces(piece: int) -> None:
    big = b"z" * 9000
    stream = (_deliver(2, "ctag", 1, b"hello", {"reply_to": "rq", "delivery_mode": 1})
              + struct.pack(">BHI", 1, 1, 13) + struct.pack(">HHQB", 60, 80, 4, 1) + b"\xce"
              + struct.pack(">BHI", 8, 0, 0) + b"\xce"                  # heartbeat
              + _deliver(2, "ctag", 2, big, {"message_id": "x"})
              + _deliver(2, "ctag", 3, b"", {})
              + struct.pack(">BHI", 1, 1, 13) + struct.pack(">HHQB", 60, 120, 5, 0) + b"\xce")
    conn = FakeConnection()
    got: dict[str, list[Any]] = {"deliver": [], "ack": [], "nack": [], "return": []}
    reader = _reader(conn, got)
    for start in range(0, len(stream), piece):
        reader.feed(stream[start:start + piece])
    assert conn.transport._read_buffer == b""
    assert got["deliver"] == [("ctag", 1, b"hello", {"delivery_mode": 1, "reply_to": "rq"}),
                              ("ctag", 2, big, {"message_id": "x"}), ("ctag", 3, b"", {})]
    assert got["ack"] == [(4, True)]
    assert got["nack"] == [(5, False)]
    assert conn.other == [(8, 0, b"")]  # everything else goes to py-amqp


def test_reader_reports_returned_messages_by_message_id() -> None:
    published = framing.publish_frames(1, "ex", "key", True, b"body", {"message_id": "9"}, 4096)
    first = _frames(published)[0]
    args = struct.pack(">HHH", 60, 50, 312) + b"\x05NO_RT" + b"\x02ex" + b"\x03key"
    stream = (struct.pack(">BHI", 1, 1, len(args)) + args + b"\xce"
              + published[8 + len(first[2]):])
    conn = FakeConnection()
    got: dict[str, list[Any]] = {"deliver": [], "ack": [], "nack": [], "return": []}
    _reader(conn, got).feed(stream)
    assert got["return"] == ["9"]
    assert conn.other == []


def test_reader_leaves_other_channels_and_methods_to_py_amqp() -> None:
    conn = FakeConnection()
    got: dict[str, list[Any]] = {"deliver": [], "ack": [], "nack": [], "return": []}
    other = _deliver(7, "c", 1, b"x", {})          # a delivery on a channel it does not own
    reader = _reader(conn, got)
    reader.feed(other)
    assert got["deliver"] == []
    assert [f[0] for f in conn.other] == [1, 2, 3]


def test_reader_refuses_a_corrupt_stream() -> None:
    from amqp.exceptions import UnexpectedFrame

    conn = FakeConnection()
    got: dict[str, list[Any]] = {"deliver": [], "ack": [], "nack": [], "return": []}
    with pytest.raises(UnexpectedFrame):
        _reader(conn, got).feed(struct.pack(">BHI", 8, 0, 0) + b"\x00")
