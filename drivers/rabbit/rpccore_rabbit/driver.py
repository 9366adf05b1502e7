"""``RabbitDriver``: rpccore over RabbitMQ (AMQP 0-9-1, :mod:`rpccore_rabbit.wire`).

``transport_url = rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost``

One driver instance (one cell of one ``RPC`` object) owns one connection and
the I/O thread that uses it (:mod:`rpccore_rabbit.connection`). Names of
exchanges, queues and routing keys come from :mod:`rpccore_rabbit.addressing`,
what kind of queue each is from :mod:`rpccore_rabbit.queues`; consumers and
replies from :mod:`rpccore_rabbit.consumer`.

Delivery (see the README): calls and confirmed casts wait for the broker's
publisher confirm and raise :class:`~rpccore.Undeliverable` when the broker
returns them unroutable. Plain casts return as soon as they are queued for
the I/O thread; their confirms are tracked in the background.

Notifications (``notify``/``listen``): one durable, bounded queue per
listener pool, bound on ``amq.direct`` (:func:`addressing.pool_queue_name`,
:func:`queues.pool_queue`); persistent messages, at least once to every
pool that has listened.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore.destination import Destination
from rpccore.driver import Driver, Incoming, ReplyHandler, Subscription
from rpccore.driverkit import Completion
from rpccore.errors import ConfigError, RPCError, TransportError
from rpccore_rabbit import addressing, queues
from rpccore_rabbit.confirms import Publish, Reported, wait_for
from rpccore_rabbit.connection import Link
from rpccore_rabbit.consumer import (
    RabbitSubscription,
    ReplyQueue,
    SubscriptionRegistry,
    declare_exchange,
)
from rpccore_rabbit.options import connection_params, rabbit_opts

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)

#: How long ``subscribe`` waits for the broker when no call deadline applies.
SUBSCRIBE_TIMEOUT = 30.0


class RabbitDriver(Driver):
    """The ``rabbit`` driver; see the module docstring and the README."""

    detects_undeliverable = True
    stores_notifications = True
    counters = ("poisoned",)

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self.params = connection_params(cell)
        control_exchange: str = cell.options.control_exchange
        self._control_exchange = control_exchange
        self.exchange = addressing.exchange_name(control_exchange)
        self.link = Link(self.params, cell.stats, f"{cell.name}/{os.urandom(3).hex()}")
        durable = self.params.durable
        self.link.hooks.append(
            lambda link: declare_exchange(link, self.exchange, durable, cell.name))
        self._subscriptions = SubscriptionRegistry(self.link, self.exchange, cell.name)
        self._replies = ReplyQueue(self.link)
        self._timeout: float = cell.options.rpc_response_timeout
        self._delivery_mode = 2 if durable else 1
        self._closed = False

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        return list(rabbit_opts)

    def connect(self, timeout: float) -> None:
        """Connect now; raises :class:`TransportError` naming the host and
        the reason (never the password) when that fails in ``timeout`` s."""
        self._check_open()
        self.link.wait_ready(time.monotonic() + timeout)

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"cell {self.cell.name}: the rabbit driver is closed")

    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        """Publish ``body`` to ``dest``; see :meth:`rpccore.Driver.send`.

        Calls (``on_reply``) and ``confirm`` casts wait for the broker's
        confirm: :class:`~rpccore.Undeliverable` if nobody's queue is bound to
        the destination. Everything waits for the connection, at most until
        ``deadline``, then raises :class:`TransportError`.
        """
        self._check_open()
        if deadline is None:
            deadline = time.monotonic() + self._timeout
        link = self.link
        if not link.ready.is_set():
            link.wait_ready(deadline)
        properties: dict[str, Any]
        waiter: Completion[None] | None = None
        if on_reply is not None:
            self._replies.ensure(on_reply)
            properties = self._call_properties(deadline)
            waiter = Completion()
        else:
            properties = {"delivery_mode": self._delivery_mode}
            if confirm:
                waiter = Completion()
        item = Publish(self.exchange, addressing.routing_key(dest), body, properties, True,
                       waiter, deadline, str(dest))
        link.publish(item, gate=True)
        if waiter is not None:
            wait_for(waiter, deadline, f"sending to {dest}")

    def _call_properties(self, deadline: float) -> dict[str, Any]:
        """A call's message properties: replies to the reply queue, and a
        time to live of the caller's remaining time (a request that outlives
        its caller need not wait in a queue)."""
        return {"delivery_mode": self._delivery_mode, "reply_to": self._replies.name,
                "expiration": str(max(1, int((deadline - time.monotonic()) * 1000)))}

    def send_nowait(self, dest: Destination, body: bytes, *, on_reply: ReplyHandler,
                    deadline: float, on_failure: Callable[[RPCError], None]) -> bool:
        """A call of an asyncio caller queued for the I/O thread on the
        calling thread (the event loop's) when nothing makes it wait: the
        connection is up, the reply queue consumed already, and a permit of
        the unconfirmed-message limit free. Its confirm is not waited for:
        a return (nobody consumes ``dest``) or a refusal past its deadline
        goes to ``on_failure``. Otherwise False, nothing sent: :meth:`send`
        sends it from a thread."""
        link = self.link
        if self._closed or not link.ready.is_set() or self._replies.handler is None:
            return False  # (the core passes one reply handler per cell)
        item = Publish(self.exchange, addressing.routing_key(dest), body,
                       self._call_properties(deadline), True, Reported(on_failure), deadline,
                       str(dest))
        if not link.confirms.try_gate(item):
            return False
        try:
            link.publish(item, gate=False)
        except TransportError:  # closed meanwhile: give the permit back
            link.confirms.forget(item, None)
            raise
        return True

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume the topic's work queue, the (topic, host) queue and a
        fanout queue of this server's own; returns once the broker consumes.

        :raises TransportError: not connected within ``SUBSCRIBE_TIMEOUT``,
            or the broker refused a declaration.
        :raises ConfigError: a queue exists with other arguments (another
            ``rabbit_queue_type``...): the message names it, both values and
            the way out.
        """
        self._check_open()
        params = self.params
        cx = self._control_exchange
        work = addressing.work_key(dest.topic)
        specs = [queues.durable_queue(params, addressing.queue_name(cx, work), work)]
        if dest.host is not None:
            direct = addressing.direct_key(dest.topic, dest.host)
            specs.append(queues.durable_queue(params, addressing.queue_name(cx, direct),
                                              direct))
        specs.append(queues.fanout_queue(addressing.fanout_queue_prefix(cx, dest.topic),
                                         addressing.fanout_key(dest.topic)))
        sub = RabbitSubscription(self._subscriptions, dest, on_message, specs)
        return self._consume(sub)

    def _consume(self, sub: RabbitSubscription) -> RabbitSubscription:
        """Activate ``sub`` and wait until the broker consumes for it."""
        self._subscriptions.add(sub)
        self._subscriptions.activate(sub)
        self.link.start()
        what = sub.dest
        if not sub.active.wait(SUBSCRIBE_TIMEOUT):
            sub.close()
            raise TransportError(f"cell {self.cell.name}: could not consume {what} within "
                                 f"{SUBSCRIBE_TIMEOUT:g} s: {self.link.last_error}")
        if sub.error is not None:
            sub.close()
            if isinstance(sub.error, ConfigError):
                raise sub.error
            raise TransportError(f"cell {self.cell.name}: the broker refused to let us "
                                 f"consume {what}: {sub.error}")
        return sub

    # -- notifications ---------------------------------------------------------

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        """Publish a persistent notification to every pool queue of ``topic``;
        see :meth:`rpccore.Driver.notify`.

        Not mandatory: a topic no pool ever listened on drops it quietly. With
        ``confirm``, returns once the broker confirmed it, or refused it for
        a full pool (counted as ``notifications_dropped`` and logged, see
        :mod:`rpccore_rabbit.confirms`).
        """
        self._check_open()
        if deadline is None:
            deadline = time.monotonic() + self._timeout
        if not self.link.ready.is_set():
            self.link.wait_ready(deadline)
        waiter: Completion[None] | None = Completion() if confirm else None
        item = Publish(addressing.NOTIFICATION_EXCHANGE,
                       addressing.notification_key(self._control_exchange, topic), body,
                       {"delivery_mode": 2}, False, waiter, deadline,
                       f"notification topic {topic!r}")
        item.republish = False
        self.link.publish(item, gate=True)
        if waiter is not None:
            wait_for(waiter, deadline, f"notifying {topic!r}")

    def _pool_queue(self, topic: str, pool: str | None) -> str:
        return addressing.pool_queue_name(self._control_exchange, topic, pool)

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume the queue of pool ``pool`` of ``topic`` (declared and bound
        first, bounded by the cell's retention options); see
        :meth:`rpccore.Driver.listen`.

        :raises TransportError: not connected within ``SUBSCRIBE_TIMEOUT``.
        :raises ConfigError: the queue exists with another type.
        """
        self._check_open()
        options = self.cell.options
        spec = queues.pool_queue(
            self.params, self._pool_queue(topic, pool),
            addressing.notification_key(self._control_exchange, topic),
            max_length=options.notification_max_queue_length,
            ttl=options.notification_ttl, expiry=self.params.pool_expiry,
            prefetch=options.server_queue_size)
        label = f"notifications {topic!r} pool {pool!r}"
        return self._consume(RabbitSubscription(self._subscriptions, label, on_message,
                                                [spec]))

    def delete_pool(self, topic: str, pool: str | None) -> None:
        """Delete the pool's queue and what it holds; see
        :meth:`rpccore.Driver.delete_pool`. Never raises (logs)."""
        name = self._pool_queue(topic, pool)

        def delete(link: Link) -> None:
            link.declare("queue.delete", 0, name, False, False, False)

        try:
            self._check_open()
            self.link.run(delete, time.monotonic() + self._timeout, f"deleting {name}")
        except Exception as exc:
            LOG.warning("rabbit: could not delete notification pool %r of topic %r (queue "
                        "%r): %s", pool, topic, name, exc)

    def close(self) -> None:
        """Close the connection and stop the I/O thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.link.close()
