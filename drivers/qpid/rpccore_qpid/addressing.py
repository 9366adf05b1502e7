"""The names of a destination's queues and routing keys on the broker
(addresses built from them: :mod:`rpccore_qpid.layout`).

Topic, host and ``control_exchange`` are opaque strings that may hold any
character, but the broker refuses ``/`` in names and keys, and ``.``, ``*``
and ``#`` carry meaning for topic exchanges. So every part is encoded
injectively into the alphabet ``[A-Za-z0-9-]`` plus ``_`` as the escape
character (``_`` followed by two lower-case hex digits per UTF-8 byte of any
other character), and parts are joined with ``.``, which no encoded part
contains. Different (kind, namespace, topic, host) tuples therefore give
different names. Names longer than :data:`MAX_NAME` (the broker allows 255
bytes) are replaced by a SHA-256 digest of the full name under a kind letter
no ordinary name uses.

Layout (``NS`` = the cell's ``control_exchange``):

- work queue of a topic, shared by its servers: ``rpccore-qpid.w.NS.TOPIC``
- direct queue of a topic on one host: ``rpccore-qpid.d.NS.TOPIC.HOST``
- fanout routing key of a topic on ``amq.direct``: ``rpccore-qpid.f.NS.TOPIC``;
  each fanout receiver gets a queue of its own: ``rpccore-qpid.q.NS.TOPIC.UUID``
  (RabbitMQ 4), or a server-named ``amq.gen-*`` one (RabbitMQ 3.x)
- reply queue of one driver instance: ``reply_<32 hex digits>``
- notifications of a topic, routing key on ``amq.direct``:
  ``rpccore-qpid.n.NS.TOPIC``; the queue of each listener pool, bound with
  that key: ``rpccore-qpid.p.NS.TOPIC`` for ``pool=None``,
  ``rpccore-qpid.p.NS.TOPIC.POOL`` for a named pool (one part more, so no
  named pool, not even ``""``, shares the name of ``None``'s)
"""

from __future__ import annotations

import uuid

from rpccore.driverkit import NameEncoding, bounded

PREFIX = "rpccore-qpid"
#: Longest name used as is; the broker's limit is 255 bytes.
MAX_NAME = 200

#: ``[A-Za-z0-9-]`` for itself, ``_`` and two lower-case hex digits for any
#: other UTF-8 byte, parts joined with ``.``: the spelling durable queues
#: already have on brokers (tests/unit/test_qpid_addressing.py pins it)
PARTS = NameEncoding(safe=NameEncoding.ALPHANUMERIC + "-", escape="_", separator=".",
                     upper=False)
#: 'h' is never one of the kinds below, so a digest cannot equal a short name
_DIGEST_PREFIX = f"{PREFIX}.h."


def encode_part(text: str) -> str:
    """Encode one name part; the result only holds ``[A-Za-z0-9_-]``.

    Injective: different strings (lone surrogates included) give different
    results, and the result never contains ``/`` or ``.``.
    """
    return PARTS.encode(text)


def _name(kind: str, *parts: str) -> str:
    return bounded(PARTS.join(f"{PREFIX}.{kind}", *parts), MAX_NAME, _DIGEST_PREFIX)


def work_queue(namespace: str, topic: str) -> str:
    """Name of the queue the servers of ``topic`` share."""
    return _name("w", namespace, topic)


def direct_queue(namespace: str, topic: str, host: str) -> str:
    """Name of the queue of ``topic`` on ``host``."""
    return _name("d", namespace, topic, host)


def fanout_key(namespace: str, topic: str) -> str:
    """Routing key of ``topic``'s fanout on ``amq.direct``."""
    return _name("f", namespace, topic)


def fanout_queue(namespace: str, topic: str) -> str:
    """A fresh name for one server's fanout queue (on one connection)."""
    return _name("q", namespace, topic, uuid.uuid4().hex)


def new_reply_queue() -> str:
    """A fresh reply queue name (matches the expiry policy ``^reply_``)."""
    return f"reply_{uuid.uuid4().hex}"


def notification_key(namespace: str, topic: str) -> str:
    """Routing key, on ``amq.direct``, of the notifications of ``topic``
    (kind ``n``: apart from every RPC topic's key)."""
    return _name("n", namespace, topic)


def pool_queue(namespace: str, topic: str, pool: str | None) -> str:
    """Name of the queue of listener pool ``pool`` of notification ``topic``:
    stable, so a pool finds its backlog again after its listeners were down."""
    if pool is None:
        return _name("p", namespace, topic)
    return _name("p", namespace, topic, pool)
