"""Queue names and routing keys for destinations: an injective encoding.

Topics and hosts are opaque strings: any character may appear in them
(periods, ``#``, ``*``, ``/``, spaces, non-ASCII). Every name built here is
made of *parts* separated by ``.``; each part is percent-encoded (:data:`PARTS`,
a :class:`rpccore.driverkit.NameEncoding`) so that it contains only
``[A-Za-z0-9_-]`` and ``%XX`` escapes, never a ``.``. Splitting a name on ``.``
therefore gives back the parts, and a leading kind letter tells the kinds
apart, so two different destinations never get the same name. These strings
are what brokers hold across upgrades: they must not change
(tests/unit/test_rabbit_addressing.py pins them).

AMQP names (queue names, routing keys, exchange names) are at most 255 bytes.
A name that would be longer is replaced by ``x.<kind>.<sha256 of the full
name>`` (:func:`rpccore.driverkit.bounded`): the ``x`` kind never starts an
unhashed name, and SHA-256 collisions are not a practical concern.

Layout, under the cell's ``control_exchange`` (a direct exchange):

=================  ===========================  ===============================
what               routing key                  queue
=================  ===========================  ===============================
work (shared)      ``t.<topic>``                ``rpccore.<exchange>.t.<topic>``
direct (host)      ``h.<topic>.<host>``         ``rpccore.<exchange>.h.<topic>.<host>``
fanout             ``f.<topic>``                ``rpccore.<exchange>.f.<topic>.<uuid>``
reply              (default exchange)           ``rpccore.reply.<uuid>``
=================  ===========================  ===============================

Each server has a fanout queue of its own (a new ``<uuid>`` on every
connection); each driver one reply queue. What kind of queue each is:
:mod:`rpccore_rabbit.queues`.

Notifications travel through the broker's own ``amq.direct`` exchange, not
the cell's: ``amq.direct`` is durable and always there, so the bindings of
the durable pool queues survive a broker restart even while a pool has no
listener (the cell's exchange is transient unless ``amqp_durable_queues``,
and a transient exchange takes its bindings with it):

=============  =================================  ==============================================
what           routing key (on ``amq.direct``)    queue
=============  =================================  ==============================================
pool ``None``  ``rpccore.<exchange>.n.<topic>``   ``rpccore.<exchange>.n.<topic>``
named pool     ``rpccore.<exchange>.n.<topic>``   ``rpccore.<exchange>.n.<topic>.<pool>``
=============  =================================  ==============================================

The ``n`` kind and the exchange in the key keep notification topics apart
from RPC topics and from other cells; ``pool=None`` has one part fewer than
any named pool (even the empty string), so it is a pool of its own.
"""

from __future__ import annotations

import uuid

from rpccore.destination import Destination
from rpccore.driverkit import NameEncoding
from rpccore.driverkit import bounded as _bounded

#: Longest AMQP short string (queue names, routing keys, exchange names).
MAX_NAME_BYTES = 255

#: How every part of a name is encoded: ``[A-Za-z0-9_-]`` as is, other bytes
#: of its UTF-8 form as ``%XX`` (upper-case hex), never a ``.``.
PARTS = NameEncoding(NameEncoding.ALPHANUMERIC + "_-", escape="%", separator=".")


def bounded(name: str, kind: str) -> str:
    """``name`` if it fits in an AMQP short string, else ``x.<kind>.<sha256>``."""
    return _bounded(name, MAX_NAME_BYTES, f"x.{kind}.")


def routing_key(dest: Destination) -> str:
    """The routing key a message for ``dest`` is published with."""
    if dest.fanout:
        return fanout_key(dest.topic)
    if dest.host is not None:
        return direct_key(dest.topic, dest.host)
    return work_key(dest.topic)


def work_key(topic: str) -> str:
    """Routing key of the queue all servers of ``topic`` share."""
    return bounded(PARTS.join("t", topic), "t")


def direct_key(topic: str, host: str) -> str:
    """Routing key of the server of ``topic`` on ``host``."""
    return bounded(PARTS.join("h", topic, host), "h")


def fanout_key(topic: str) -> str:
    """Routing key every server of ``topic`` binds its fanout queue with."""
    return bounded(PARTS.join("f", topic), "f")


def exchange_name(control_exchange: str) -> str:
    """The AMQP exchange of a cell: its ``control_exchange``, verbatim when it
    is safe and short, else encoded (``amq.`` names are reserved by brokers)."""
    if (control_exchange and not control_exchange.startswith("amq.")
            and all(c.isascii() and (c.isalnum() or c in "_-.:") for c in control_exchange)
            and len(control_exchange) <= MAX_NAME_BYTES):
        return control_exchange
    return bounded(PARTS.join("rpccore-x", control_exchange), "e")


def queue_name(control_exchange: str, key: str) -> str:
    """The queue bound with routing ``key`` (work or direct) under a cell's
    exchange. Queues live in the vhost, so the exchange is part of the name."""
    return bounded(f"rpccore.{PARTS.encode(control_exchange)}.{key}", "q")


def fanout_queue_prefix(control_exchange: str, topic: str) -> str:
    """The stable part of a server's fanout queue names; each connection
    adds ``.<uuid>`` (:func:`unique_queue_name`)."""
    return f"rpccore.{PARTS.encode(control_exchange)}.f.{PARTS.encode(topic)}"


def unique_queue_name(prefix: str) -> str:
    """A fresh, unique queue name starting with ``prefix`` (hashed if long)."""
    return bounded(f"{prefix}.{uuid.uuid4().hex}", "q")


#: The exchange notifications are published to (see the module docstring).
NOTIFICATION_EXCHANGE = "amq.direct"


def _notification_base(control_exchange: str, topic: str) -> str:
    return f"rpccore.{PARTS.encode(control_exchange)}.n.{PARTS.encode(topic)}"


def notification_key(control_exchange: str, topic: str) -> str:
    """Routing key, on :data:`NOTIFICATION_EXCHANGE`, of the notifications
    of ``topic`` in the cell of ``control_exchange``."""
    return bounded(_notification_base(control_exchange, topic), "n")


def pool_queue_name(control_exchange: str, topic: str, pool: str | None) -> str:
    """The queue of listener pool ``pool`` of notification ``topic``; stable,
    so a pool finds its backlog again."""
    base = _notification_base(control_exchange, topic)
    return bounded(base if pool is None else f"{base}.{PARTS.encode(pool)}", "q")


def reply_queue_name() -> str:
    """A fresh, unique reply queue name for one driver instance."""
    return f"rpccore.reply.{uuid.uuid4().hex}"
