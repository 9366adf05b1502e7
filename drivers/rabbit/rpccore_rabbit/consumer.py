"""Consumers: servers' subscriptions, the messages they receive, and the
driver's reply queue.

Everything here that touches a channel runs on the :class:`Link`'s I/O
thread, as a hook after every (re)connection or as a task; other threads only
queue work (acknowledgements, replies). Which queues exist and how they are
declared is :mod:`rpccore_rabbit.queues`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rpccore.destination import Destination
from rpccore.driver import Incoming, ReplyHandler, Subscription
from rpccore.ratelog import RateLimitedLog
from rpccore_rabbit import addressing, queues, wire
from rpccore_rabbit.confirms import Publish
from rpccore_rabbit.connection import Link, Task

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)
#: Seconds before consuming again a queue whose consumer the broker ended.
_RECONSUME_DELAY = 0.5


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
        dropped by the broker.
        """
        if self._reply_to is None:
            return
        self._link.submit(Publish("", self._reply_to, bytes(body), {"delivery_mode": 1},
                                  False, None, None, "a reply"))

    def ack(self) -> None:
        """Acknowledge on the channel it came from; after a reconnection the
        broker has already requeued it, so the acknowledgement is dropped."""
        self._link.submit(("ack", self._generation, self._tag, None))

    def requeue(self) -> bool:
        """Give it back to its queue (``basic.reject`` with requeue) for a
        consumer of the same queue; after a reconnection the broker has
        already done so."""
        self._link.submit(("ack", self._generation, self._tag, True))
        return True


def declare_exchange(link: Link, exchange: str, durable: bool, cell: str) -> None:
    """Declare the cell's direct exchange (hook: on every connection).

    :raises ConfigError: it exists with another durability.
    """
    try:
        link.declare("exchange.declare", 0, exchange, "direct", False, durable, False, False,
                     False, {})
    except wire.ChannelClosed as exc:
        raise queues.explain_refusal(exc, cell) or exc from None


class RabbitSubscription(Subscription):
    """The consumers of one server (work queue, host queue, fanout queue) or
    of one notification listener (its pool's queue); ``dest`` names them in
    log lines."""

    def __init__(self, registry: SubscriptionRegistry, dest: Destination | str,
                 on_message: Callable[[Incoming], None],
                 specs: list[queues.QueueSpec]) -> None:
        self.registry = registry
        self.dest = dest
        self.on_message = on_message
        self.specs = specs
        self.tags: list[str] = []
        self.generation = -1
        self.closed = False
        self.error: BaseException | None = None
        self.active = threading.Event()

    def activate(self, link: Link) -> None:
        """Declare, bind and consume (I/O thread).

        :raises wire.ChannelClosed: a declaration was refused.
        """
        if self.closed or self.generation == link.generation:
            return
        names = []
        for spec in self.specs:
            name = spec.name or addressing.unique_queue_name(spec.prefix)
            held = queues.declare(link, spec, name)
            if spec.bound and held > spec.bound:
                self._trim(link, name, spec.bound)
            link.declare("queue.bind", 0, name, spec.exchange or self.registry.exchange,
                         spec.key, False, {})
            names.append(name)
        generation = link.generation
        self.tags = [link.consume(name, self._deliverer(link, generation, spec),
                                  prefetch=spec.prefetch)
                     for name, spec in zip(names, self.specs, strict=True)]
        self.generation = generation
        self.active.set()

    def _trim(self, link: Link, name: str, bound: int) -> None:
        dropped = queues.trim(link, name, bound)
        if dropped:
            link.stats.incr("notifications_dropped", dropped)
            LOG.warning("rabbit: dropped %d notification(s) of %s (queue %r): over "
                        "notification_max_queue_length = %d (a quorum queue lets a burst "
                        "pass its bound before it refuses more)", dropped, self.dest, name,
                        bound)

    def _deliverer(self, link: Link, generation: int,
                   spec: queues.QueueSpec) -> Callable[[int, bytes, dict[str, Any]], None]:
        limit = spec.arguments.get("x-delivery-limit", 0)

        def deliver(tag: int, body: bytes, properties: dict[str, Any]) -> None:
            if self.closed:
                link.submit(("ack", generation, tag, True))  # requeue
                return
            if limit and self._poisoned(properties, limit):
                link.submit(("ack", generation, tag, False))  # drop
                return
            self.on_message(RabbitIncoming(link, generation, tag, body,
                                           properties.get("reply_to")))
        return deliver

    def _poisoned(self, properties: dict[str, Any], limit: int) -> bool:
        """Whether servers already had this message ``limit`` times: quorum
        queues count deliveries that were never acknowledged (x-delivery-count)."""
        headers = properties.get("headers")
        count = headers.get("x-delivery-count", 0) if headers else 0
        if not isinstance(count, int) or count < limit:
            return False
        self.registry.link.stats.incr("poisoned")
        _RATELOG.warning("poisoned", "rabbit: a request for %s was handed to servers %d "
                         "times without being acknowledged (they crashed or lost their "
                         "connection running it): dropped as a poison message",
                         self.dest, count)
        return True

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
    """Every live subscription of a driver; re-activated on reconnection and
    when the broker ends one of their consumers."""

    def __init__(self, link: Link, exchange: str, cell: str) -> None:
        self.link = link
        self.exchange = exchange
        self.cell = cell
        self._lock = threading.Lock()
        self._subs: list[RabbitSubscription] = []
        link.hooks.append(self._on_connected)
        link.cancelled.append(self._on_cancelled)

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
        except wire.ChannelClosed as exc:
            sub.error = queues.explain_refusal(exc, self.cell) or exc
            LOG.error("rabbit: cannot consume %s: %s", sub.dest, sub.error)
            sub.active.set()

    def _on_connected(self, link: Link) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            self._activate_one(link, sub)
        if subs:
            LOG.debug("rabbit %s: consuming for %d server(s)", link.name, len(subs))

    def _on_cancelled(self, link: Link, tag: str) -> None:
        with self._lock:
            owners = [sub for sub in self._subs if tag in sub.tags]
        for sub in owners:
            self._later(sub, link.generation, _RECONSUME_DELAY)

    def _later(self, sub: RabbitSubscription, generation: int, delay: float) -> None:
        """Consume ``sub``'s queues anew in ``delay`` s (a task on the I/O
        thread: never inside the handling of what the broker sent)."""
        timer = threading.Timer(delay, self.link.submit,
                                (Task(lambda link: self._reconsume(link, sub, generation, delay),
                                      None),))
        timer.daemon = True
        timer.start()

    def _reconsume(self, link: Link, sub: RabbitSubscription, generation: int,
                   delay: float) -> None:
        if sub.closed or link.generation != generation:
            return  # closed, or a new connection consumes everything anyway
        for tag in sub.tags:
            if tag in link.consumers:
                link.cancel(tag)
        sub.generation = -1
        try:
            sub.activate(link)
        except wire.ChannelClosed as exc:
            # e.g. a classic queue whose node is down: retry until it is back
            LOG.warning("rabbit: cannot consume %s again yet: %s", sub.dest, exc)
            self._later(sub, generation, min(delay * 2, 5.0))


class ReplyQueue:
    """The one reply queue of a driver: exclusive to its connection, declared
    again (under the same name when the broker allows) after a reconnect."""

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
        spec = queues.QueueSpec(self.name, "", durable=False, exclusive=True)
        try:
            queues.declare(link, spec, self.name)
        except wire.ChannelClosed as exc:
            if exc.code != wire.RESOURCE_LOCKED:
                raise
            # the broker still holds the old connection's queue: a new name
            # (replies to calls made before the reconnect are lost)
            self.name = addressing.reply_queue_name()
            queues.declare(link, spec, self.name)
        handler = self.handler
        assert handler is not None

        def deliver(tag: int, body: bytes, properties: dict[str, Any]) -> None:
            handler(body)

        link.consume(self.name, deliver, no_ack=True)
