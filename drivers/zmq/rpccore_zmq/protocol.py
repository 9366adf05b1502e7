"""Messages on the wire and host strings.

A client's DEALER talks to a server's ROUTER. Every message is one frame (the
ROUTER adds the connection's identity frame in front on its side): a header
of fixed layout, then what the header says follows. The envelope is the rest
of the frame, never split or joined on a delimiter. A header starts with
:data:`MAGIC`, a one-byte kind and an 8-byte sequence number (big-endian,
increasing per connection)::

    client -> server   MAGIC kind seq topic-length(4) host-length(4) topic host envelope
                           kind: CALL, CAST or FANOUT; host empty when any
                           server of the topic may take it
                       MAGIC PING seq
    server -> client   MAGIC RECEIPT seq   every request up to seq was taken
                       MAGIC REFUSED seq   nobody here consumes request seq
                       MAGIC REPLY seq envelope   the reply to call seq
                       MAGIC PONG seq

Topic and host are UTF-8. One frame per message because pyzmq releases the
GIL around every frame it sends or receives, and with several threads
calling at once every release may hand the GIL to another thread and cost
two thread switches to get it back. (Version 1, ``RPCZ1``, sent the header
and the envelope as two frames.)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from rpccore.driverkit import parse_host_port

MAGIC = b"RPCZ2"

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
_REQUEST_HEAD = struct.Struct(">5scQII")
HEAD_SIZE = _HEAD.size
REQUEST_HEAD_SIZE = _REQUEST_HEAD.size


class Malformed(ValueError):
    """A message that is not one of this protocol (the reason says why)."""


class Request(NamedTuple):
    """A request as a server's ROUTER received it."""

    identity: bytes
    kind: bytes
    seq: int
    topic: str
    host: str
    body: bytes


def header(kind: bytes, seq: int) -> bytes:
    """A message that is a header alone (receipts, refusals, pings, pongs)."""
    return _HEAD.pack(MAGIC, kind, seq)


def reply(seq: int, envelope: bytes) -> bytes:
    """The reply to call ``seq``."""
    return _HEAD.pack(MAGIC, REPLY, seq) + envelope


def request(kind: bytes, seq: int, topic: bytes, host: bytes, envelope: bytes) -> bytes:
    """A request to ``topic`` (and ``host``, or ``b""``)."""
    return _REQUEST_HEAD.pack(MAGIC, kind, seq, len(topic), len(host)) + topic + host + envelope


def is_receipt(frame: bytes) -> bool:
    """Whether ``frame`` is a well-formed RECEIPT."""
    return len(frame) == HEAD_SIZE and frame[5:6] == RECEIPT and frame[:5] == MAGIC


def parse_header(frame: bytes) -> tuple[bytes, int]:
    """``(kind, seq)`` of a message that is a header alone.

    :raises Malformed: wrong size or magic.
    """
    if len(frame) != HEAD_SIZE:
        raise Malformed(f"message of {len(frame)} bytes, not a header of {HEAD_SIZE}")
    magic, kind, seq = _HEAD.unpack(frame)
    if magic != MAGIC:
        raise Malformed("not an rpccore zmq message")
    return kind, seq


def parse_reply(frames: list[bytes]) -> tuple[bytes, int, bytes]:
    """``(kind, seq, envelope)`` of what a server sent (one frame): the
    envelope is ``b""`` except in a REPLY, where it is never empty.

    :raises Malformed: not one frame, too short, wrong magic, a REPLY without
        an envelope or another kind with one.
    """
    if len(frames) != 1:
        raise Malformed(f"a message of {len(frames)} frames")
    frame = frames[0]
    if len(frame) < HEAD_SIZE:
        raise Malformed(f"message of {len(frame)} bytes, shorter than a header")
    magic, kind, seq = _HEAD.unpack_from(frame)
    if magic != MAGIC:
        raise Malformed("not an rpccore zmq message")
    if kind == REPLY:
        if len(frame) == HEAD_SIZE:
            raise Malformed("reply without an envelope")
        return kind, seq, frame[HEAD_SIZE:]
    if len(frame) != HEAD_SIZE:
        raise Malformed(f"{len(frame) - HEAD_SIZE} bytes after a header of kind {kind!r}")
    return kind, seq, b""


def parse_request(frames: list[bytes], max_size: int) -> Request:
    """Check what a ROUTER received: ``[identity, message]``.

    :raises Malformed: wrong frame count, magic or kind, a header too short
        for its topic and host, an empty topic, topic or host not UTF-8, or
        an envelope that is empty or over ``max_size`` bytes.
    """
    if len(frames) != 2:
        raise Malformed(f"{len(frames)} frames, not an identity and a message")
    message = frames[1]
    if len(message) < HEAD_SIZE or message[:5] != MAGIC:
        raise Malformed("not an rpccore zmq message")
    kind = message[5:6]
    if kind == PING:
        if len(message) != HEAD_SIZE:
            raise Malformed("malformed ping")
        return Request(frames[0], PING, _HEAD.unpack(message)[2], "", "", b"")
    if kind not in REQUEST_KINDS:
        raise Malformed(f"unknown kind {kind!r}")
    if len(message) < REQUEST_HEAD_SIZE:
        raise Malformed(f"request header of {len(message)} bytes")
    _, _, seq, topic_len, host_len = _REQUEST_HEAD.unpack_from(message)
    topic_end = REQUEST_HEAD_SIZE + topic_len
    host_end = topic_end + host_len
    if topic_len == 0 or host_end > len(message):
        raise Malformed(f"topic length {topic_len} and host length {host_len} do not fit "
                        f"a message of {len(message)} bytes")
    size = len(message) - host_end
    if not size:
        raise Malformed("empty envelope")
    if size > max_size:
        raise Malformed(f"envelope of {size} bytes over the limit of {max_size}")
    try:
        topic = message[REQUEST_HEAD_SIZE:topic_end].decode("utf-8")
        host = message[topic_end:host_end].decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("topic or host is not UTF-8") from None
    return Request(frames[0], kind, seq, topic, host, message[host_end:])


def endpoint(host: str, default_port: int) -> str:
    """The ZMQ endpoint of a host string: ``"10.0.0.5"`` ->
    ``"tcp://10.0.0.5:9501"``; the forms accepted are those of
    :func:`rpccore.driverkit.parse_host_port`.

    :raises ValueError: (:class:`~rpccore.driverkit.BadAddress`) empty
        address, junk after ``]`` or a port outside 1..65535.
    """
    return f"tcp://{parse_host_port(host, default_port)}"


def bind_endpoint(address: str, port: int) -> str:
    """The endpoint a server binds: ``tcp://*:9501``, ``tcp://[::1]:9501``."""
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"tcp://{address}:{port}"
