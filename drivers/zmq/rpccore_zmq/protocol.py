"""Frames on the wire and host strings.

A client's DEALER talks to a server's ROUTER. Every message is one header
frame, plus the envelope as a frame of its own where there is one, so the
envelope stays opaque and no frame is ever split or joined on a delimiter.
A header starts with :data:`MAGIC`, a one-byte kind and an 8-byte sequence
number (big-endian, increasing per connection)::

    client -> server   [MAGIC kind seq topic-length(4) topic host] [envelope]
                           kind: CALL, CAST or FANOUT; host empty when any
                           server of the topic may take it
                       [MAGIC PING seq]
    server -> client   [MAGIC RECEIPT seq]   every request up to seq was taken
                       [MAGIC REFUSED seq]   nobody here consumes request seq
                       [MAGIC REPLY seq] [envelope]   the reply to call seq
                       [MAGIC PONG seq]

Topic and host are UTF-8. Few frames matter for speed: pyzmq releases the
GIL around every frame it sends or receives.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

MAGIC = b"RPCZ1"

CALL = b"c"
CAST = b"s"
FANOUT = b"f"
PING = b"p"
RECEIPT = b"k"
REFUSED = b"u"
REPLY = b"r"
PONG = b"o"

REQUEST_KINDS = (CALL, CAST, FANOUT)

_HEAD = struct.Struct(">5scQ")
_REQUEST_HEAD = struct.Struct(">5scQI")
HEAD_SIZE = _HEAD.size
REQUEST_HEAD_SIZE = _REQUEST_HEAD.size


class Malformed(ValueError):
    """Frames that are not a message of this protocol (the reason says why)."""


class Request(NamedTuple):
    """A request as a server's ROUTER received it."""

    identity: bytes
    kind: bytes
    seq: int
    topic: str
    host: str
    body: bytes


def header(kind: bytes, seq: int) -> bytes:
    """A header without addressing (receipts, replies, pings)."""
    return _HEAD.pack(MAGIC, kind, seq)


def request_header(kind: bytes, seq: int, topic: bytes, host: bytes) -> bytes:
    """The header of a request to ``topic`` (and ``host``, or ``b""``)."""
    return _REQUEST_HEAD.pack(MAGIC, kind, seq, len(topic)) + topic + host


def is_receipt(frame: bytes) -> bool:
    """Whether ``frame`` is a well-formed RECEIPT header."""
    return len(frame) == HEAD_SIZE and frame[5:6] == RECEIPT and frame[:5] == MAGIC


def parse_header(frame: bytes) -> tuple[bytes, int]:
    """``(kind, seq)`` of a header without addressing.

    :raises Malformed: wrong size or magic.
    """
    if len(frame) != HEAD_SIZE:
        raise Malformed(f"header of {len(frame)} bytes, not {HEAD_SIZE}")
    magic, kind, seq = _HEAD.unpack(frame)
    if magic != MAGIC:
        raise Malformed("not an rpccore zmq header")
    return kind, seq


def parse_request(frames: list[bytes], max_size: int) -> Request:
    """Check what a ROUTER received: ``[identity, header(, envelope)]``.

    :raises Malformed: wrong magic, kind or frame count, a header too short
        for its topic, an empty topic, topic or host not UTF-8, or an envelope
        that is empty or over ``max_size`` bytes.
    """
    if len(frames) < 2 or len(frames[1]) < HEAD_SIZE:
        raise Malformed(f"{len(frames)} frames without a protocol header")
    head = frames[1]
    if head[:5] != MAGIC:
        raise Malformed("not an rpccore zmq header")
    kind = head[5:6]
    if kind == PING:
        if len(frames) != 2 or len(head) != HEAD_SIZE:
            raise Malformed("malformed ping")
        return Request(frames[0], PING, _HEAD.unpack(head)[2], "", "", b"")
    if kind not in REQUEST_KINDS:
        raise Malformed(f"unknown kind {kind!r}")
    if len(frames) != 3:
        raise Malformed(f"request of {len(frames)} frames, not 3")
    if len(head) < REQUEST_HEAD_SIZE:
        raise Malformed(f"request header of {len(head)} bytes")
    _, _, seq, topic_len = _REQUEST_HEAD.unpack_from(head)
    if topic_len == 0 or REQUEST_HEAD_SIZE + topic_len > len(head):
        raise Malformed(f"topic length {topic_len} does not fit the header")
    body = frames[2]
    if not body:
        raise Malformed("empty envelope")
    if len(body) > max_size:
        raise Malformed(f"envelope of {len(body)} bytes over the limit of {max_size}")
    cut = REQUEST_HEAD_SIZE + topic_len
    try:
        topic = head[REQUEST_HEAD_SIZE:cut].decode("utf-8")
        host = head[cut:].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("topic or host is not UTF-8") from None
    return Request(frames[0], kind, seq, topic, host, body)


def endpoint(host: str, default_port: int) -> str:
    """The ZMQ endpoint of a host string: ``"10.0.0.5"`` ->
    ``"tcp://10.0.0.5:9501"``.

    Accepted: ``name``, ``name:port``, ``[v6]``, ``[v6]:port`` and a bare IPv6
    address (two or more colons, no port).

    :raises ValueError: empty address, junk after ``]`` or a port outside
        1..65535.
    """
    text = host.strip()
    port_text = ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"host {host!r}: unclosed '['")
        address, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"host {host!r}: junk after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        address, port_text = text.split(":")
    else:
        address = text
    if not address:
        raise ValueError(f"host {host!r} has no address")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"host {host!r}: port {port_text!r} is not 1..65535")
        port = int(port_text)
    if ":" in address:
        address = f"[{address}]"
    return f"tcp://{address}:{port}"


def bind_endpoint(address: str, port: int) -> str:
    """The endpoint a server binds: ``tcp://*:9501``, ``tcp://[::1]:9501``."""
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"tcp://{address}:{port}"
