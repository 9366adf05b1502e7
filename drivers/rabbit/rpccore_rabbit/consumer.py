"""Consumers: servers' subscriptions, the messages they receive, and the
driver's reply queue.

Everything here that touches a channel runs on the :class:`Link`'s I/O
thread, as a hook after every (re)connection or as a task; other threads only
queue work (acknowledgements, replies).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp

from rpccore.destination import Destination
from rpccore.driver import Incoming, ReplyHandler, Subscription
from rpccore_rabbit import addressing
from rpccore_rabbit.confirms import Publish
from rpccore_rabbit.connection import Link, Task

LOG = logging.getLogger(__name__)

#: Unused fanout and reply queues vanish after this long (ms), even if a
#: broker kept them (auto-delete needs a consumer to have come and gone).
_UNUSED_QUEUE_EXPIRES_MS = 60_000


class RabbitIncoming(Incoming):
    """A delivered message; ``ack``/``reply`` only queue work for the I/O thread."""

    __slots__ = ("body", "_link", "_generation", "_tag", "_reply_to")

    def __init__(self, link: Link, generation: int, tag: int, body: bytes,
                 reply_to: str | None) -> None:
        self.body = body
        self._link = link
        self._generation = generation
        self._tag = tag
        self._reply_to = reply_to

    @property
    def can_reply(self) -> bool:
        return self._reply_to is not None

    def reply(self, body: bytes) -> None:
        """Publish ``body`` to the caller's reply queue (default exchange).

        Never raises for a caller that has gone: an unroutable reply is
        dropped by the broker (counted as ``returned`` if it comes back).
        """
        if self._reply_to is None:
            return
        self._link.submit(Publish("", self._reply_to, bytes(body), {"delivery_mode": 1},
                                  False, None, None, "a reply"))

    def ack(self) -> None:
        """Acknowledge on the channel it came from; after a reconnection the
        broker has already requeued it, so the acknowledgement is dropped."""
        self._link.submit(("ack", self._generation, self._tag, None))


class QueueSpec:
    """One queue of a subscription: how to declare it and bind it."""

    __slots__ = ("name", "key", "durable", "auto_delete", "arguments")

    def __init__(self, name: str, key: str, durable: bool, auto_delete: bool,
                 arguments: dict[str, Any] | None = None) -> None:
        self.name = name
        self.key = key
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = arguments


def declare_exchange(link: Link, exchange: str, durable: bool) -> None:
    """Declare the cell's direct exchange (hook: on every connection)."""
    link.declarer.exchange_declare(exchange, "direct", durable=durable, auto_delete=False)


class RabbitSubscription(Subscription):
    """The consumers of one server: work queue, direct queue, fanout queue."""

    def __init__(self, registry: SubscriptionRegistry, dest: Destination,
                 on_message: Callable[[Incoming], None], queues: list[QueueSpec]) -> None:
        self.registry = registry
        self.dest = dest
        self.on_message = on_message
        self.queues = queues
        self.tags: list[str] = []
        self.generation = -1
        self.closed = False
        self.error: BaseException | None = None
        self.active = threading.Event()

    def activate(self, link: Link) -> None:
        """Declare, bind and consume (I/O thread). Channel errors are kept in
        ``error`` and reported to the subscriber, not raised."""
        if self.closed or self.generation == link.generation:
            return
        exchange = self.registry.exchange
        self.tags = []
        for spec in self.queues:
            link.declarer.queue_declare(spec.name, durable=spec.durable,
                                        auto_delete=spec.auto_delete,
                                        arguments=spec.arguments)
            link.declarer.queue_bind(spec.name, exchange, spec.key)
        generation = link.generation
        for spec in self.queues:
            self.tags.append(link.consume(spec.name, self._deliverer(link, generation)))
        self.generation = generation
        self.active.set()

    def _deliverer(self, link: Link, generation: int) -> Callable[[int, bytes, dict[str, Any]],
                                                                  None]:
        def deliver(tag: int, body: bytes, properties: dict[str, Any]) -> None:
            if self.closed:
                link.submit(("ack", generation, tag, True))  # requeue
                return
            if isinstance(body, str):
                body = body.encode("utf-8")
            self.on_message(RabbitIncoming(link, generation, tag, body,
                                           properties.get("reply_to")))
        return deliver

    def close(self) -> None:
        """Cancel the consumers (waits a little when connected; never raises)."""
        if self.closed:
            return
        self.closed = True
        self.registry.remove(self)
        link = self.registry.link
        if not link.ready.is_set():
            return

        def cancel(link: Link) -> None:
            if self.generation != link.generation:
                return
            for tag in self.tags:
                link.cancel(tag)

        try:
            link.run(cancel, time.monotonic() + 5.0, "cancelling consumers")
        except Exception as exc:
            LOG.info("rabbit: cancelling the consumers of %s: %s", self.dest, exc)


class SubscriptionRegistry:
    """Every live subscription of a driver; re-activated on reconnection."""

    def __init__(self, link: Link, exchange: str) -> None:
        self.link = link
        self.exchange = exchange
        self._lock = threading.Lock()
        self._subs: list[RabbitSubscription] = []
        link.hooks.append(self._on_connected)

    def add(self, sub: RabbitSubscription) -> None:
        with self._lock:
            self._subs.append(sub)

    def remove(self, sub: RabbitSubscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def activate(self, sub: RabbitSubscription) -> None:
        """Queue the activation of ``sub`` (runs once connected)."""
        self.link.submit(Task(lambda link: self._activate_one(link, sub), None))

    def _activate_one(self, link: Link, sub: RabbitSubscription) -> None:
        try:
            sub.activate(link)
        except amqp.exceptions.ChannelError as exc:
            sub.error = exc
            sub.active.set()
            LOG.error("rabbit: cannot consume %s: %s", sub.dest, exc)
            link.reopen_declarer()

    def _on_connected(self, link: Link) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            self._activate_one(link, sub)
        if subs:
            LOG.debug("rabbit %s: consuming for %d server(s)", link.name, len(subs))


class ReplyQueue:
    """The one reply queue of a driver, consumed for as long as it lives."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.name = addressing.reply_queue_name()
        self.handler: ReplyHandler | None = None
        self.generation = -1
        self._lock = threading.Lock()

    def ensure(self, handler: ReplyHandler) -> None:
        """Start consuming (first call only); replies go to ``handler``."""
        if self.handler is not None:
            return
        with self._lock:
            if self.handler is not None:
                return
            self.handler = handler
            self.link.hooks.insert(0, self._on_connected)
            # Runs before any publish queued after it; a no-op if the hook ran.
            self.link.submit(Task(self._on_connected, None))

    def _on_connected(self, link: Link) -> None:
        if self.generation == link.generation:
            return
        self.generation = link.generation
        link.declarer.queue_declare(
            self.name, durable=False, auto_delete=True,
            arguments={"x-expires": _UNUSED_QUEUE_EXPIRES_MS})
        handler = self.handler
        assert handler is not None

        def deliver(tag: int, body: bytes, properties: dict[str, Any]) -> None:
            handler(body.encode("utf-8") if isinstance(body, str) else body)

        link.consume(self.name, deliver, no_ack=True)
