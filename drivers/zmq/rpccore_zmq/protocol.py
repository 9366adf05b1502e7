"""Frames on the wire and host strings.

A client's DEALER talks to a server's ROUTER. Every message starts with the
frame :data:`MAGIC` and a one-byte kind; addressing travels in frames of its
own, so the envelope (the last frame of a request) stays opaque::

    client -> server   MAGIC, CALL|CAST|FANOUT, seq, topic, host, envelope
                       MAGIC, PING, seq
    server -> client   MAGIC, RECEIPT, seq     every message up to seq was taken
                       MAGIC, REFUSED, seq     nobody here consumes that message
                       MAGIC, REPLY, envelope  the reply to a call
                       MAGIC, PONG, seq

``seq`` is 8 bytes, big-endian, increasing per connection. ``host`` is empty
for a message any server of the topic may take. Topic and host are UTF-8.
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

_SEQ = struct.Struct(">Q")
pack_seq = _SEQ.pack


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


def unpack_seq(frame: bytes) -> int:
    """The sequence number in ``frame``.

    :raises Malformed: not 8 bytes.
    """
    if len(frame) != 8:
        raise Malformed(f"sequence frame of {len(frame)} bytes, not 8")
    value: int = _SEQ.unpack(frame)[0]
    return value


def parse_request(frames: list[bytes], max_size: int) -> Request:
    """Check what a ROUTER received: ``[identity, MAGIC, kind, ...]``.

    :raises Malformed: wrong magic, kind or frame count, empty topic, topic or
        host not UTF-8, a bad sequence frame, or an envelope over ``max_size``
        bytes (or empty).
    """
    if len(frames) < 4 or frames[1] != MAGIC:
        raise Malformed(f"{len(frames)} frames without the protocol header")
    kind = frames[2]
    if kind == PING:
        if len(frames) != 4:
            raise Malformed(f"ping of {len(frames)} frames, not 4")
        return Request(frames[0], PING, unpack_seq(frames[3]), "", "", b"")
    if kind not in REQUEST_KINDS:
        raise Malformed(f"unknown kind {kind[:8]!r}")
    if len(frames) != 7:
        raise Malformed(f"request of {len(frames)} frames, not 7")
    seq = unpack_seq(frames[3])
    body = frames[6]
    if not body:
        raise Malformed("empty envelope")
    if len(body) > max_size:
        raise Malformed(f"envelope of {len(body)} bytes over the limit of {max_size}")
    if not frames[4] or len(frames[4]) > max_size or len(frames[5]) > max_size:
        raise Malformed("empty or oversized topic or host")
    try:
        topic = frames[4].decode("utf-8")
        host = frames[5].decode("utf-8")
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
