"""Subjects, stream and consumer names for destinations: an injective encoding.

Topics, hosts, pools and the control exchange are opaque strings: any
character may appear in them. NATS gives ``.`` (token separator), ``*`` and
``>`` (wildcards) meaning, forbids whitespace, and reserves subjects that
start with ``$``. Every *token* built here is encoded by
:data:`TOKENS` (:class:`rpccore.driverkit.NameEncoding`): only
``[A-Za-z0-9_-]`` and ``%XX`` escapes (the string's UTF-8 bytes), so it is
never empty of meaning, never a wildcard, never contains a separator, and
decodes back to the one string it came from. The empty string is the token
``%``, which no non-empty string encodes to. A token longer than
:data:`MAX_TOKEN` is replaced by ``~`` and the SHA-256 of its encoding
(:func:`rpccore.driverkit.bounded`): ``~`` never appears in an encoded
token, and SHA-256 collisions are not a practical concern.

Layout, under ``rpccore.<control_exchange>``:

================  ===================================  =====================
what              subject                              carried by
================  ===================================  =====================
work (shared)     ``rpccore.<cx>.t.<topic>``           core NATS, queue group
direct (host)     ``rpccore.<cx>.h.<topic>.<host>``    core NATS, queue group
fanout            ``rpccore.<cx>.f.<topic>``           core NATS
confirmed work    ``rpccore.<cx>.c.t.<topic>``         JetStream (work queue)
confirmed direct  ``rpccore.<cx>.c.h.<topic>.<host>``  JetStream (work queue)
notifications     ``rpccore.<cx>.n.<topic>``           JetStream (interest)
================  ===================================  =====================

With ``nats_cast_streams`` above 1, confirmed casts have standby streams
too: stream ``k`` (from 1) holds ``rpccore.<cx>.c<k>.>`` (``.c1.t.<topic>``,
``.c1.h.<topic>.<host>``...); stream 0 keeps the names above.

These strings are deployed (durable consumers are named after them):
tests/unit/test_nats_naming.py pins them.
"""

from __future__ import annotations

import hashlib

from rpccore.driverkit import NameEncoding, bounded

#: First token of every subject the driver publishes or consumes.
PREFIX = "rpccore"
#: Longest token kept verbatim (NATS limits a whole protocol line to 4 KiB).
MAX_TOKEN = 200
#: The queue group every shared subscription joins.
QUEUE_GROUP = "rpccore"

#: The encoding of one subject token (``.`` separates tokens).
TOKENS = NameEncoding(safe=NameEncoding.ALPHANUMERIC + "_-", escape="%", separator=".")


def encode_token(text: str) -> str:
    """One subject token for ``text``; injective (see the module docstring)."""
    if not text:
        return "%"
    return bounded(TOKENS.encode(text), MAX_TOKEN, "~")


def decode_token(token: str) -> str:
    """The inverse of :func:`encode_token` for tokens that were not hashed."""
    if token == "%":
        return ""
    if token.startswith("~"):
        raise ValueError("a hashed token cannot be decoded")
    return TOKENS.decode(token)


def short_hash(*parts: str) -> str:
    """32 hex digits naming ``parts`` (stream and consumer names must be
    short single tokens; the parts are separated by a NUL, which no subject
    holds)."""
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


class Subjects:
    """The subjects and JetStream names of one control exchange."""

    def __init__(self, control_exchange: str) -> None:
        self.base = f"{PREFIX}.{encode_token(control_exchange)}"
        self._hash = short_hash(self.base)
        #: the work-queue stream of confirmed casts, and the subjects it holds
        self.cast_stream = self.cast_stream_name(0)
        self.cast_stream_subjects = self._cast_prefix(0) + ".>"

    def _cast_prefix(self, stream: int) -> str:
        return f"{self.base}.c" if stream == 0 else f"{self.base}.c{stream}"

    def cast_stream_name(self, stream: int) -> str:
        """Confirmed casts' work-queue stream number ``stream`` (0: the
        first; 1 and up: standbys, see :mod:`rpccore_nats.standby`)."""
        return f"rpccore-c-{self._hash}" if stream == 0 else f"rpccore-c{stream}-{self._hash}"

    def cast_stream_wildcard(self, stream: int) -> str:
        """The subjects stream number ``stream`` holds."""
        return self._cast_prefix(stream) + ".>"

    def work(self, topic: str) -> str:
        return f"{self.base}.t.{encode_token(topic)}"

    def direct(self, topic: str, host: str) -> str:
        return f"{self.base}.h.{encode_token(topic)}.{encode_token(host)}"

    def fanout(self, topic: str) -> str:
        return f"{self.base}.f.{encode_token(topic)}"

    def confirmed_work(self, topic: str, stream: int = 0) -> str:
        return f"{self._cast_prefix(stream)}.t.{encode_token(topic)}"

    def confirmed_direct(self, topic: str, host: str, stream: int = 0) -> str:
        return f"{self._cast_prefix(stream)}.h.{encode_token(topic)}.{encode_token(host)}"

    def notifications(self, topic: str) -> str:
        return f"{self.base}.n.{encode_token(topic)}"

    @staticmethod
    def notification_stream(subject: str) -> str:
        """One stream per notification topic, so that a gap in a pool's
        stream sequence numbers is a notification the pool lost."""
        return "rpccore-n-" + short_hash(subject)

    @staticmethod
    def consumer(subject: str, pool: str | None = None) -> str:
        """The durable consumer of ``subject`` (for notifications: of
        ``pool``; ``None`` is a pool of its own, distinct from every name)."""
        pool_token = "" if pool is None else "p" + encode_token(pool)
        return "c" + short_hash(subject, pool_token)

    @staticmethod
    def deliver_subject(stream: str, consumer: str) -> str:
        """Where a push consumer delivers (outside every stream's subjects)."""
        return f"_rpccore.deliver.{stream}.{consumer}"
