"""Where the qpid driver's queues are and how they come to exist, for the two
AMQP 1.0 address formats of RabbitMQ.

No queue is ever both non-durable and non-exclusive (RabbitMQ 4.3 refuses
those by default):

======  ================================  ====================================
queue   RabbitMQ 4 (v2 addresses)         RabbitMQ 3.x plugin (v1 addresses)
======  ================================  ====================================
work,   durable, ``x-expires``            durable (a durable source terminus
host    (``queue_expiry``), declared      makes the plugin declare it so);
        through the management node       expiry by a broker policy only
fanout  exclusive, a new name on every    durable, server-named ``amq.gen-*``
        connection, bound to              on ``amq.direct``; expiry by a
        ``amq.direct``                    broker policy only
reply   exclusive, ``reply_<uuid>``       durable ``reply_<uuid>``; expiry by
                                          a broker policy only
pool    durable, bounded (``x-max-        none: notifications need v2 (below)
        length``, ``x-overflow``,
        ``x-message-ttl``, ``x-expires``),
        bound to ``amq.direct``
======  ================================  ====================================

RabbitMQ 3.x's plugin cannot declare an exclusive queue, nor give a queue
arguments, nor bind one to an exchange through AMQP 1.0: the best it allows
is durable queues, which the operator bounds with a policy (see the README;
``.ci/prepare-backends`` sets it on the test broker). RabbitMQ 4 has a
management node (HTTP over AMQP, ``/management``) that declares queues with
any settings and binds them: :mod:`rpccore_qpid.management`.

A notification listener pool needs a named queue with arguments, bound to
an exchange, so that notifiers reach every pool through one routing key:
RabbitMQ 3.x's plugin can give none of that (see the README), so v1
addresses carry no notifications (:attr:`Layout.carries_notifications`).
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rpccore.errors import ConfigError

#: The exchange fanout and notification keys are bound on: it exists on
#: every RabbitMQ vhost, is durable (bindings of durable queues survive a
#: broker restart) and matches keys exactly (the 3.x plugin cannot declare
#: exchanges).
FANOUT_EXCHANGE = "amq.direct"
_REPLY_NAME = r"reply_[0-9a-f]{32}"


@dataclass(frozen=True)
class Request:
    """One request to RabbitMQ 4's management node (HTTP over AMQP)."""

    method: str
    path: str
    body: Any = None
    #: queue arguments that may differ from an existing queue's (``409
    #: inequivalent arg``): the queue is then used as it is, with a warning
    tolerated: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Node:
    """What a receiver consumes: its source ``address``, the management
    ``requests`` that make it exist first (v2), whether its source terminus
    is durable (v1: the plugin then declares a durable queue)."""

    address: str
    queue: str = ""
    requests: tuple[Request, ...] = field(default=())
    durable_source: bool = False


class Layout(abc.ABC):
    """One address format: where receivers consume and senders send."""

    #: ``v1`` or ``v2``
    name: str
    #: whether listener pools can exist (:meth:`pool`, :meth:`notification_target`)
    carries_notifications: bool = False

    @abc.abstractmethod
    def durable(self, queue: str) -> Node:
        """A work or host queue: durable, outliving its servers."""

    @abc.abstractmethod
    def fanout(self, key: str, queue: str) -> Node:
        """A server's fanout queue, bound with ``key``; ``queue`` is a fresh
        name (v2 only: the 3.x plugin names it itself)."""

    @abc.abstractmethod
    def reply(self, queue: str) -> Node:
        """A driver's reply queue."""

    @abc.abstractmethod
    def queue_target(self, queue: str) -> str:
        """Where senders send to ``queue``; the broker refuses to attach the
        sender (``amqp:not-found``) when it does not exist (v1: after a probe)."""

    @abc.abstractmethod
    def fanout_target(self, key: str) -> str:
        """Where senders send a fanout with ``key``."""

    def reply_to(self, queue: str) -> str:
        """The ``reply_to`` of requests whose replies go to ``queue``."""
        return self.queue_target(queue)

    @abc.abstractmethod
    def is_reply_address(self, address: object) -> bool:
        """Whether ``address`` is a reply address this driver hands out:
        servers reply to nothing else, so a forged ``reply_to`` cannot make
        them write into arbitrary queues."""

    def pool(self, queue: str, key: str, arguments: dict[str, Any]) -> Node:
        """A notification pool's queue ``queue``: durable, with ``arguments``,
        bound with ``key`` on ``amq.direct``. Only where
        :attr:`carries_notifications`."""
        raise NotImplementedError(f"no notification pools with {self.name} addresses")

    def notification_target(self, key: str) -> str:
        """Where notifiers send the notifications routed by ``key``. Only
        where :attr:`carries_notifications`."""
        raise NotImplementedError(f"no notification pools with {self.name} addresses")


class V1Layout(Layout):
    """RabbitMQ 3.x's ``rabbitmq_amqp1_0`` plugin (also 4.0 while v1
    addresses are permitted)."""

    name = "v1"
    _reply = re.compile(rf"^/amq/queue/{_REPLY_NAME}$")

    def durable(self, queue: str) -> Node:
        return Node(f"/queue/{queue}", queue, durable_source=True)

    def fanout(self, key: str, queue: str) -> Node:
        return Node(f"/exchange/{FANOUT_EXCHANGE}/{key}", "", durable_source=True)

    def reply(self, queue: str) -> Node:
        return Node(f"/queue/{queue}", queue, durable_source=True)

    def queue_target(self, queue: str) -> str:
        return f"/amq/queue/{queue}"

    def fanout_target(self, key: str) -> str:
        return f"/exchange/{FANOUT_EXCHANGE}/{key}"

    def is_reply_address(self, address: object) -> bool:
        return isinstance(address, str) and self._reply.match(address) is not None


class V2Layout(Layout):
    """RabbitMQ 4: ``/queues/NAME`` and ``/exchanges/NAME/KEY``, queues
    declared through the management node.

    :param expiry: seconds an unused work or host queue stays (0: forever).
    """

    name = "v2"
    carries_notifications = True
    _reply = re.compile(rf"^/queues/{_REPLY_NAME}$")

    def __init__(self, expiry: int) -> None:
        self.expiry = expiry

    def durable(self, queue: str) -> Node:
        arguments = {"x-expires": self.expiry * 1000} if self.expiry else {}
        body = {"durable": True, "exclusive": False, "auto_delete": False,
                "arguments": arguments}
        return Node(f"/queues/{_path(queue)}", queue, (Request("PUT", _queue(queue), body),))

    def fanout(self, key: str, queue: str) -> Node:
        binding = {"source": FANOUT_EXCHANGE, "binding_key": key,
                   "destination_queue": queue, "arguments": {}}
        return Node(f"/queues/{_path(queue)}", queue,
                    (Request("PUT", _queue(queue), _EXCLUSIVE),
                     Request("POST", "/bindings", binding)))

    def reply(self, queue: str) -> Node:
        return Node(f"/queues/{_path(queue)}", queue,
                    (Request("PUT", _queue(queue), _EXCLUSIVE),))

    def pool(self, queue: str, key: str, arguments: dict[str, Any]) -> Node:
        body = {"durable": True, "exclusive": False, "auto_delete": False,
                "arguments": arguments}
        binding = {"source": FANOUT_EXCHANGE, "binding_key": key,
                   "destination_queue": queue, "arguments": {}}
        # other retention bounds than the queue's (an operator changing them,
        # one process at a time) are no reason to stop listening
        return Node(f"/queues/{_path(queue)}", queue,
                    (Request("PUT", _queue(queue), body, POOL_TOLERATED),
                     Request("POST", "/bindings", binding)))

    def notification_target(self, key: str) -> str:
        return self.fanout_target(key)

    def queue_target(self, queue: str) -> str:
        return f"/queues/{_path(queue)}"

    def fanout_target(self, key: str) -> str:
        return f"/exchanges/{FANOUT_EXCHANGE}/{_path(key)}"

    def is_reply_address(self, address: object) -> bool:
        return isinstance(address, str) and self._reply.match(address) is not None


_EXCLUSIVE = {"durable": False, "exclusive": True, "auto_delete": True, "arguments": {}}
#: pool queue arguments another process of the cell may have set otherwise
POOL_TOLERATED = frozenset({"x-max-length", "x-message-ttl", "x-expires"})


def _path(segment: str) -> str:
    return quote(segment, safe="-._~")


def _queue(queue: str) -> str:
    return f"/queues/{_path(queue)}"


def deletion(queue: str) -> Request:
    """The management request that deletes ``queue`` and what it holds (v2)."""
    return Request("DELETE", _queue(queue))


def choose(option: str, remote_properties: dict[Any, Any] | None, expiry: int) -> Layout:
    """The layout for ``option`` (``auto``, ``v1``, ``v2``): ``auto`` is v2 on
    RabbitMQ 4 or later (as its open frame says), v1 on anything else."""
    if option == "v1":
        return V1Layout()
    if option == "v2":
        return V2Layout(expiry)
    props = {str(k): v for k, v in (remote_properties or {}).items()}
    version = str(props.get("version", ""))
    major = version.split(".", 1)[0]
    if props.get("product") == "RabbitMQ" and major.isdigit() and int(major) >= 4:
        return V2Layout(expiry)
    return V1Layout()


def refusal(cell: str, queue: str, text: str) -> ConfigError | None:
    """The :class:`ConfigError` for a queue that exists with other settings
    (``inequivalent arg`` from either broker), or None for other refusals."""
    if "inequivalent arg" not in text:
        return None
    older = "'durable'" in text and "current is 'false'" in text
    why = ("it was made by an rpccore older than this layout (non-durable): stop every "
           "server using it" if older else
           "another process of the cell declares it otherwise (queue_expiry?): use the "
           "same settings everywhere, or stop every server (or notification listener) "
           "using it")
    return ConfigError(
        f"cell {cell}: queue {queue!r} exists with other settings: {text}. Way out: {why}, "
        f"delete it (rabbitmqctl delete_queue {queue!r}; what it holds is lost) and start "
        "them again.")
