"""The wire envelope: JSON, versioned, size-checked, optionally signed.

Layout of an unsigned envelope (one JSON object)::

    {"v": 1, "id": "...", "kind": "call"|"cast"|"reply"|"control"|"notification", ...}

Requests carry ``dest`` (``topic``, ``fanout``, and ``host`` and ``cell`` where
set), ``method``, ``args``, ``ctx`` and ``deadline`` (wall clock seconds;
absent, or null, for a cast without one). Replies carry ``re`` (the
request's id) and either ``result`` (absent when it is null) or ``failure``
(``type``, ``message``, ``traceback``).

Optional request keys, absent when unused: ``ver`` and ``ns`` (the message's
API version and namespace), ``hb`` (heartbeat seconds: the server sends
keepalives), ``win`` (the caller reads a stream, with this initial credit),
``sys`` (a request answered by rpccore itself, such as ``"ping"``), ``hdr``
(an object of strings that the caller's interceptors send to the server's:
the trace context, ``traceparent`` and ``tracestate``, travels here; see
:mod:`rpccore.interceptors`; a malformed one is ignored). A request
answered more than once carries ``part`` in its non-final replies:
``"ka"`` (keepalive) or ``"item"`` (a stream item with ``seq``); replies to
streams and to fanout calls carry ``from`` (the server's own destination,
where a caller sends ``control`` envelopes: ``re`` and ``credit`` or
``cancel``) and ``host`` (plain calls' replies do not: they need neither).
Notifications (``kind`` ``"notification"``) carry ``ts`` (when it was
emitted: ISO 8601 in UTC, ``2026-12-07T09:17:02.123456+00:00``), ``pub``
(the publisher id), ``event`` (the event type), ``prio`` (the priority:
``audit``, ``info``...), ``ctx``, and ``payload`` (any JSON value; absent
when null); their ``id`` is the notification's ``message_id``.
Unknown keys are ignored, so minor
additions stay compatible; an envelope of a newer major version is refused
with a clear error. Senders leave out what would be null: an envelope without
``null`` in it encodes in a fraction of the time (:mod:`rpccore.jsoncodec`).

With a secret key the envelope is wrapped, still as JSON::

    {"sig":"<64 hex digits of HMAC-SHA256 over the inner bytes>","env":<inner>}

The signature covers the inner bytes exactly as sent, so verifying needs no
re-serialisation.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from rpccore import jsoncodec
from rpccore.errors import InvalidMessage

VERSION = 1
KINDS = ("call", "cast", "reply", "control", "notification")

_SIG_HEAD = b'{"sig":"'
_SIG_MID = b'","env":'
_SIG_LEN = 64
_INNER_START = len(_SIG_HEAD) + _SIG_LEN + len(_SIG_MID)


class BadSignature(InvalidMessage):
    """The cell has a secret key and the envelope is unsigned or tampered."""


class UnsupportedVersion(InvalidMessage):
    """The envelope comes from a newer, incompatible major version."""


def _sign(key: bytes, inner: bytes) -> bytes:
    return hmac.new(key, inner, hashlib.sha256).hexdigest().encode("ascii")


def encode(envelope: dict[str, Any], *, max_size: int, key: bytes | None = None) -> bytes:
    """Serialise ``envelope`` to bytes.

    :raises InvalidMessage: something in it is not JSON (sets, bytes,
        objects, NaN), or the result exceeds ``max_size``.
    """
    try:
        inner = jsoncodec.dumps(envelope)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessage(f"message cannot be encoded as JSON: {exc}") from None
    if key is not None:
        inner = _SIG_HEAD + _sign(key, inner) + _SIG_MID + inner + b"}"
    if len(inner) > max_size:
        raise InvalidMessage(
            f"encoded message is {len(inner)} bytes, over max_message_size={max_size}")
    return inner


def _unwrap(body: bytes, key: bytes) -> bytes:
    if (len(body) <= _INNER_START or not body.startswith(_SIG_HEAD)
            or body[_INNER_START - len(_SIG_MID):_INNER_START] != _SIG_MID
            or not body.endswith(b"}")):
        raise BadSignature("envelope is not signed")
    inner = body[_INNER_START:-1]
    given = body[len(_SIG_HEAD):len(_SIG_HEAD) + _SIG_LEN]
    if not hmac.compare_digest(given, _sign(key, inner)):
        raise BadSignature("envelope signature does not match")
    return inner


def decode(body: bytes, *, max_size: int, key: bytes | None = None) -> dict[str, Any]:
    """Check and parse envelope bytes.

    Nothing but :class:`InvalidMessage` (or its subclasses
    :class:`BadSignature` and :class:`UnsupportedVersion`) escapes, whatever
    the input.
    """
    if type(body) is not bytes:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise InvalidMessage(f"envelope must be bytes, not {type(body).__name__}")
        body = bytes(body)
    if len(body) > max_size:
        raise InvalidMessage(f"envelope of {len(body)} bytes is over max_message_size={max_size}")
    if key is not None:
        body = _unwrap(body, key)
    try:
        env = jsoncodec.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidMessage(f"envelope is not JSON: {exc}") from None
    if not isinstance(env, dict):
        raise InvalidMessage("envelope is not a JSON object")
    version = env.get("v")
    if type(version) is not int:
        raise InvalidMessage("envelope has no integer version 'v'")
    if version > VERSION:
        raise UnsupportedVersion(
            f"envelope version {version} is newer than this rpccore understands ({VERSION}); "
            f"upgrade rpccore on this side")
    _check_fields(env)
    return env


def _check_fields(env: dict[str, Any]) -> None:
    kind = env.get("kind")
    if kind not in KINDS:
        raise InvalidMessage(f"envelope kind {kind!r} is not one of {KINDS}")
    if type(env.get("id")) is not str:
        raise InvalidMessage("envelope field 'id' is missing or not a string")
    deadline = env.get("deadline")
    if deadline is not None and (isinstance(deadline, bool)
                                 or not isinstance(deadline, (int, float))):
        raise InvalidMessage("envelope deadline is not a number")
    if kind == "control":
        if type(env.get("re")) is not str:
            raise InvalidMessage("envelope field 're' is missing or not a string")
        return
    if kind == "notification":
        _check_notification(env)
        return
    if kind == "reply":
        if type(env.get("re")) is not str:
            raise InvalidMessage("envelope field 're' is missing or not a string")
        failure = env.get("failure")
        if failure is not None and not (isinstance(failure, dict)
                                        and isinstance(failure.get("type"), str)
                                        and isinstance(failure.get("message"), str)):
            raise InvalidMessage("envelope failure is malformed")
        return
    if (type(env.get("method")) is not str or type(env.get("args")) is not dict
            or type(env.get("ctx")) is not dict):
        raise InvalidMessage("envelope fields 'method', 'args' and 'ctx' must be a string, "
                             "an object and an object")


def _check_notification(env: dict[str, Any]) -> None:
    for key in ("ts", "pub", "event", "prio"):
        if type(env.get(key)) is not str:
            raise InvalidMessage(f"notification field {key!r} is missing or not a string")
    if type(env.get("ctx")) is not dict:
        raise InvalidMessage("notification field 'ctx' is missing or not an object")
