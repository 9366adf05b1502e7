"""Which queues a cell declares, with which arguments, and what a refused
declaration means for the operator.

No queue is ever both non-durable and non-exclusive (RabbitMQ 4.3 refuses
those by default, deprecated feature ``transient_nonexcl_queues``):

=========  =================================  ======================================
queue      kind                               why
=========  =================================  ======================================
work       durable, ``rabbit_queue_type``,    outlives its servers (requests wait for
           ``x-expires``                      the next one); stable name
host       durable, as work                   as work, for one (topic, host)
fanout     exclusive, auto-delete, classic    one per server and connection; a fresh
                                              name on every connection
reply      exclusive, auto-delete, classic    one per driver; the same name again
                                              after a reconnect when the broker allows
pool       durable, ``rabbit_queue_type``,    a listener pool's notifications, kept
           bounded (see :func:`pool_queue`)   while none of its listeners runs
=========  =================================  ======================================

``x-expires`` (``rabbit_queue_expiry``) removes the work and host queues of
topics and hosts that never come back. Quorum queues also get
``x-delivery-limit`` (``rabbit_quorum_delivery_limit``).

A queue that exists with other arguments is refused by the broker with 406
PRECONDITION_FAILED ``inequivalent arg``; :func:`explain_refusal` turns that
into a :class:`~rpccore.ConfigError` naming the queue, both values and the
way out. Only a different expiry (and, for pool queues, retention) is
tolerated (:func:`declare`). Nothing here deletes a queue; only
``RabbitDriver.delete_pool`` does, when asked.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from rpccore.errors import ConfigError
from rpccore_rabbit import addressing, wire
from rpccore_rabbit.options import ConnectionParams

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>queue|exchange) '(?P<name>.*)' in "
    r"vhost '(?P<vhost>.*)': received (?P<received>.+?) but current is (?P<current>.+)$")
_VALUE = re.compile(r"^the value '(?P<value>.*)' of type '[^']*'$")
LOG = logging.getLogger(__name__)
_WARNED: set[str] = set()  # queues already warned about (one line each)


@dataclass
class QueueSpec:
    """One queue of a subscription: how to declare and bind it.

    ``name`` is empty for queues named afresh on every connection
    (fanout), which :func:`fresh_name` fills in.
    """

    name: str
    key: str
    durable: bool
    exclusive: bool
    arguments: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""  # fanout: the name's stable part; a random suffix follows
    exchange: str = ""  # bound on this exchange; empty: the cell's
    #: arguments whose difference from an existing queue's is a warning,
    #: not a refusal (the queue is then used as it is)
    tolerated: frozenset[str] = frozenset({"x-expires"})
    prefetch: int = 0  # deliveries its consumer holds unacknowledged; 0: the channel's
    bound: int = 0  # pool queues: trimmed to this many messages when consumed (:func:`trim`)

    @property
    def auto_delete(self) -> bool:
        return self.exclusive


def durable_queue(params: ConnectionParams, name: str, key: str) -> QueueSpec:
    """A work or host queue: durable, of the cell's queue type, expiring."""
    arguments: dict[str, Any] = {}
    if params.queue_expiry:
        arguments["x-expires"] = params.queue_expiry * 1000
    if params.queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
        if params.delivery_limit:
            arguments["x-delivery-limit"] = params.delivery_limit
    # classic: no x-queue-type, as every rpccore before queue types declared
    # them, so existing classic queues stay equivalent
    return QueueSpec(name, key, durable=True, exclusive=False, arguments=arguments)


#: Retention arguments of pool queues: processes of a cell that disagree on
#: them (an operator changing ``notification_max_queue_length``, one
#: listener at a time) use the queue as the first one made it.
RETENTION = frozenset({"x-expires", "x-max-length", "x-message-ttl"})


def pool_queue(params: ConnectionParams, name: str, key: str, *, max_length: int,
               ttl: float, expiry: int, prefetch: int) -> QueueSpec:
    """A notification pool's queue: durable, of the cell's queue type, bound
    on ``amq.direct``, bounded to ``max_length`` messages (beyond it the
    broker refuses new ones, ``x-overflow = reject-publish``: a
    ``basic.nack`` the notifier counts and logs as ``notifications_dropped``)
    and ``ttl`` seconds per message; removed by the broker after ``expiry``
    seconds without a listener (0: never)."""
    arguments: dict[str, Any] = {"x-max-length": max_length, "x-overflow": "reject-publish",
                                 "x-message-ttl": max(1, int(ttl * 1000))}
    if expiry:
        arguments["x-expires"] = expiry * 1000
    if params.queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
        if params.delivery_limit:
            arguments["x-delivery-limit"] = params.delivery_limit
    return QueueSpec(name, key, durable=True, exclusive=False, arguments=arguments,
                     exchange=addressing.NOTIFICATION_EXCHANGE, tolerated=RETENTION,
                     prefetch=prefetch, bound=max_length)


def fanout_queue(prefix: str, key: str) -> QueueSpec:
    """A server's fanout queue: exclusive to its connection."""
    return QueueSpec("", key, durable=False, exclusive=True, prefix=prefix)


def declare(link: Any, spec: QueueSpec, name: str) -> int:
    """Declare queue ``name`` as ``spec`` says on ``link``'s declaring channel
    (I/O thread).

    A queue that differs only in its expiry (made before
    ``rabbit_queue_expiry`` existed, or by a process with another value) is
    used as it is, with a warning: the expiry changes nothing about delivery,
    and this keeps rolling upgrades of durable queues possible. Pool queues
    also tolerate other retention bounds (:data:`RETENTION`).

    :returns: how many messages the queue holds.
    :raises wire.ChannelClosed: refused (see :func:`explain_refusal`).
    """
    try:
        declared = link.declare("queue.declare", 0, name, False, spec.durable,
                                spec.exclusive, spec.auto_delete, False, spec.arguments)
    except wire.ChannelClosed as exc:
        found = _INEQUIVALENT.search(exc.text)
        if found is None or found["arg"] not in spec.tolerated:
            raise
        declared = link.declare("queue.declare", 0, name, True, False, False, False, False,
                                {})
        if name not in _WARNED:
            _WARNED.add(name)
            LOG.warning("rabbit: queue %r exists with %s = %s (this process asks for %s): "
                        "used as it is; to change it, delete the queue at a quiet moment "
                        "(rabbitmqctl delete_queue) or use one setting everywhere", name,
                        found["arg"], _value(found["current"]), _value(found["received"]))
    return int(declared[1]) if declared and len(declared) > 1 else 0


def trim(link: Any, name: str, bound: int) -> int:
    """Drop the oldest messages of queue ``name`` beyond ``bound`` (I/O
    thread, declaring channel); returns how many.

    A quorum queue's ``reject-publish`` starts refusing only once its leader
    has told the publishers' channels that it is full, so a burst can pass
    the bound; a listener coming back trims its pool to the bound first.
    Each ``basic.get`` says how many messages are left, so listeners that
    trim one queue at the same time stop at the bound together.
    """
    dropped = 0
    conn = link.conn
    while True:
        got = conn.get(link.declarer, name)
        if got is None:
            return dropped
        tag, left = got
        if left + 1 <= bound:
            conn.send(link.declarer, "basic.reject", tag, True)
            return dropped
        conn.send(link.declarer, "basic.ack", tag, False)
        dropped += 1


def explain_refusal(error: wire.ChannelClosed, cell: str) -> ConfigError | None:
    """The :class:`ConfigError` an operator needs for a refused declaration,
    or None when ``error`` is not about existing settings."""
    if error.code != wire.PRECONDITION_FAILED:
        return None
    found = _INEQUIVALENT.search(error.text)
    if found is None:
        return ConfigError(f"cell {cell}: the broker refused a declaration: {error.text}")
    arg, kind, name = found["arg"], found["kind"], found["name"]
    current, received = _value(found["current"]), _value(found["received"])
    if arg == "x-queue-type":  # classic queues were declared without it
        current, received = (v if v != "none" else "classic (not set)"
                             for v in (current, received))
    return ConfigError(
        f"cell {cell}: {kind} {name!r} (vhost {found['vhost']!r}) exists with {arg} = "
        f"{current}, but this process declares {arg} = {received}. Way out: "
        f"{way_out(arg, kind, name, current)}")


def way_out(arg: str, kind: str, name: str, current: str) -> str:
    """What the operator can do about ``kind`` ``name`` whose ``arg`` differs."""
    delete = (f"delete it (rabbitmqctl delete_queue {name!r}, with -p VHOST for another "
              "vhost: what it holds is lost)")
    if kind == "exchange":
        return ("amqp_durable_queues must be the same in every process of the cell; "
                "set it as the exchange was made.")
    if arg == "x-queue-type":
        kept = current.split()[0]
        return (f"to keep the queue, set rabbit_queue_type = {kept} in this cell (every "
                "process must agree); to change its type, stop every "
                f"server of its topic, {delete}, and start them with the new setting.")
    if arg in ("durable", "auto_delete", "exclusive"):
        return ("the queue was made by an rpccore older than queue types (non-durable "
                "and auto-delete): stop every server using it (it goes with its last "
                f"consumer) or {delete}, then start them again.")
    if arg == "x-expires":
        return (f"rabbit_queue_expiry differs between processes of the cell: use one "
                f"value everywhere, or {delete}.")
    if arg == "x-delivery-limit":
        return ("rabbit_quorum_delivery_limit differs between processes of the cell: use "
                f"one value everywhere, or {delete}.")
    return (f"another application may use the same names: use the same settings "
            f"everywhere, or {delete}.")


def _value(text: str) -> str:
    found = _VALUE.match(text)
    if found is not None:
        return found["value"]
    return text.strip("'")
