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
                       MAGIC NOTIFY seq topic-length pool-length topic pool envelope
                           a notification for one pool (see pool_code)
                       MAGIC POOLS seq topic-length 0 topic "?"
                           which pools of this notification topic listen here?
                       MAGIC PING seq
    server -> client   MAGIC RECEIPT seq   every request up to seq was taken
                       MAGIC REFUSED seq   nobody here consumes request seq
                       MAGIC REPLY seq envelope   the reply to call seq (to POOLS
                           seq: the pools, see encode_pools)
                       MAGIC PONG seq

Topic and host are UTF-8. Notification topics travel in the topic field
too, but a NOTIFY or POOLS request is routed among notification listeners
only, so they never meet an RPC topic of the same name.

One frame per message because pyzmq releases the GIL around every frame it
sends or receives, and with several threads calling at once every release
may hand the GIL to another thread and cost two thread switches to get it
back. (Version 1, ``RPCZ1``, sent the header
and the envelope as two frames.)
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

from rpccore.driverkit import parse_host_port
from rpccore.errors import InvalidDestination

MAGIC = b"RPCZ2"

CALL = b"c"
CAST = b"s"
FANOUT = b"f"
PING = b"p"
RECEIPT = b"k"
REFUSED = b"u"
REPLY = b"r"
PONG = b"o"
NOTIFY = b"n"
POOLS = b"q"

REQUEST_KINDS = (CALL, CAST, FANOUT, NOTIFY, POOLS)
#: the body of a POOLS request (a request's envelope is never empty)
POOLS_QUERY = b"?"

#: What notification listeners register with the matchmaker under, ahead of
#: the topic. RPC topics that start with it are refused (``check_topic``),
#: so a notification key is never an RPC topic's, and the reverse.
NOTIFICATION_KEY_PREFIX = "rpccore.notify/"

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


def check_topic(topic: str) -> None:
    """Refuse an RPC topic that reads as a notification key.

    :raises InvalidDestination: it starts with :data:`NOTIFICATION_KEY_PREFIX`.
    """
    if topic.startswith(NOTIFICATION_KEY_PREFIX):
        raise InvalidDestination(f"topic {topic!r}: on zmq, topics starting with "
                                 f"{NOTIFICATION_KEY_PREFIX!r} are reserved for notifications")


def notification_key(topic: str) -> str:
    """The matchmaker key of the hosts listening to notification ``topic``."""
    return NOTIFICATION_KEY_PREFIX + topic


def pool_code(pool: str | None) -> str:
    """What a notification for ``pool`` carries in its header's host field:
    ``-`` for ``None``, ``+`` and the name for a named pool (injective, and
    ``None`` differs from every name).

    :raises InvalidDestination: the name cannot be written as UTF-8 (a lone
        surrogate).
    """
    if pool is None:
        return "-"
    try:
        pool.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidDestination(f"pool {pool!r} cannot be written as UTF-8") from None
    return "+" + pool


def pool_name(code: str) -> str | None:
    """The inverse of :func:`pool_code` (for log lines)."""
    return None if code == "-" else code[1:]


def encode_pools(codes: list[str]) -> bytes:
    """The answer to a POOLS request: the pool codes listening here."""
    return json.dumps(codes).encode("utf-8")


def decode_pools(body: bytes) -> list[str]:
    """The pool codes of a POOLS answer.

    :raises Malformed: not a JSON list of pool codes.
    """
    try:
        codes = json.loads(body)
    except ValueError:
        raise Malformed("a pools answer that is not JSON") from None
    if not isinstance(codes, list) or not all(
            isinstance(c, str) and (c == "-" or c.startswith("+")) for c in codes):
        raise Malformed("a pools answer that is not a list of pools")
    return codes


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
