"""The ``qpid`` driver: AMQP 1.0 through Apache Qpid Proton.

``transport_url = qpid://user:pass@host:5672[,user:pass@host2:5672]/[VHOST]``.
One connection (and one I/O thread) per driver, that is per cell of an
``RPC`` object. Addressing is in :mod:`rpccore_qpid.addressing`; connection
handling in :mod:`rpccore_qpid.connection`.

Guarantees:

- a plain cast returns once handed to the I/O thread (no round trip); it
  waits only for the connection (up to its deadline) and when
  ``max_unsettled`` messages are still unacknowledged by the broker;
- ``confirm=True`` returns once the broker accepted the message;
- a call or a confirmed cast to a topic (or topic and host) whose queue does
  not exist raises :class:`~rpccore.Undeliverable` at once; a plain cast
  there is counted as ``returned`` and logged. A queue exists from the first
  time a server consumed it until the broker removes it;
- messages unacknowledged by the broker when the connection drops are sent
  again after reconnecting (at-least-once); requests delivered to a server
  but not yet acknowledged by it are redelivered by the broker.

Notifications (``notify``/``listen``) need RabbitMQ 4 (v2 addresses): one
durable, bounded queue per listener pool, bound on ``amq.direct``; durable
messages, at least once to every pool that has listened
(:mod:`rpccore_qpid.notifications`). With v1 addresses (RabbitMQ 3.x) they
raise :class:`~rpccore.ConfigError`.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from oslo_config import cfg
from proton import Delivery, Message

from rpccore.destination import Destination
from rpccore.driver import Driver, Incoming, ReplyHandler, Subscription
from rpccore.driverkit import Completion
from rpccore.errors import ConfigError, RPCError, TransportError
from rpccore.ratelog import RateLimitedLog
from rpccore_qpid import addressing, management, notifications
from rpccore_qpid.connection import IoLoop
from rpccore_qpid.consumer import QpidSubscription
from rpccore_qpid.layout import Layout, deletion
from rpccore_qpid.options import list_opts
from rpccore_qpid.receiver import IncomingLink
from rpccore_qpid.sender import Outgoing, OutgoingLink

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)
#: Reply senders kept open (one per calling driver instance seen recently).
_REPLY_SENDERS = 128
_REPLY_CREDIT = 500
_ADDRESS_CACHE = 4096


def _nothing() -> None:
    pass


def _no_reply_address(address: object) -> bool:
    return False  # listeners never reply


class QpidDriver(Driver):
    """AMQP 1.0 transport; see the module docstring for what it guarantees."""

    detects_undeliverable = True
    #: on RabbitMQ 4 (v2 addresses); with v1 notifications raise ConfigError
    stores_notifications = True

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self._namespace: str = cell.options.control_exchange
        self._lock = threading.Lock()
        self._loop: IoLoop | None = None
        self._closed = False
        self._window = threading.BoundedSemaphore(cell.options.max_unsettled)
        self._reply_queue = addressing.new_reply_queue()
        self._reply_link: IncomingLink | None = None
        self._on_reply: ReplyHandler | None = None
        # addresses whose sender is open: written by the I/O thread only
        self._ready: set[str] = set()
        self._addresses: dict[Destination, str] = {}
        self._notify_addresses: dict[str, str] = {}
        self._outcomes = notifications.Outcomes(cell)
        # I/O thread only
        self._senders: dict[str, OutgoingLink] = {}
        self._reply_senders: collections.OrderedDict[str, OutgoingLink] = \
            collections.OrderedDict()

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        return list_opts()

    # -- connection ------------------------------------------------------------

    def _io(self) -> IoLoop:
        with self._lock:
            if self._closed:
                raise TransportError(f"cell {self.cell.name}: the qpid driver is closed")
            if self._loop is None:
                self._loop = IoLoop(self.cell)
                self._loop.start()
            return self._loop

    def connect(self, timeout: float) -> None:
        self._io().wait_connected(time.monotonic() + timeout)

    def _deadline(self, deadline: float | None) -> float:
        if deadline is not None:
            return deadline
        return time.monotonic() + float(self.cell.options.rpc_response_timeout)

    # -- sending ---------------------------------------------------------------

    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        deadline = self._deadline(deadline)
        loop = self._io()
        loop.wait_connected(deadline)
        address = self._addresses.get(dest)
        if address is None:
            address = self._address_of(dest, _layout(loop))
        if on_reply is not None:
            self._ensure_reply_link(loop, on_reply, deadline)
        # A call waits for its message to be written only while its sender
        # is not known to be open: that is when the broker may refuse it.
        wait = confirm or (on_reply is not None and address not in self._ready)
        self._acquire(deadline)
        future: Completion[None] | None = Completion() if wait else None
        # a request nobody took before its caller gave up expires in the queue
        reply_to = _layout(loop).reply_to(self._reply_queue) if on_reply else None
        item = Outgoing(bytes(body), deadline, future, confirm, self._window.release,
                        self._returned, reply_to=reply_to, expires=on_reply is not None)
        self._submit(loop, address, item, str(dest))

    def _acquire(self, deadline: float) -> None:
        """A place among the messages the broker has not acknowledged yet."""
        if not self._window.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TransportError(f"cell {self.cell.name}: {self.cell.options.max_unsettled} "
                                 "messages still unacknowledged by the broker at the deadline")

    def _submit(self, loop: IoLoop, address: str, item: Outgoing, what: str) -> None:
        """Hand ``item`` to the I/O thread; wait for its future, if any."""
        loop.submit(lambda: self._io_send(loop, address, item))
        future, deadline = item.future, item.deadline
        if future is None or deadline is None:
            return
        if not future.wait_until(deadline) and future.abandon():
            raise TransportError(f"cell {self.cell.name}: {what} could not be sent "
                                 "before the deadline")
        future.result(0)  # raises what the I/O thread failed it with

    def _address_of(self, dest: Destination, layout: Layout) -> str:
        """Where messages to ``dest`` go (cached: encoding costs more than a look-up)."""
        if dest.fanout:
            address = layout.fanout_target(addressing.fanout_key(self._namespace, dest.topic))
        elif dest.host is not None:
            address = layout.queue_target(
                addressing.direct_queue(self._namespace, dest.topic, dest.host))
        else:
            address = layout.queue_target(addressing.work_queue(self._namespace, dest.topic))
        if len(self._addresses) >= _ADDRESS_CACHE:
            self._addresses.clear()
        self._addresses[dest] = address
        return address

    def _returned(self, why: str) -> None:
        self.cell.stats.incr("returned")
        _RATELOG.warning("returned", "cell %s: cast dropped: %s", self.cell.name, why)

    def _io_send(self, loop: IoLoop, address: str, item: Outgoing) -> None:
        link = self._senders.get(address)
        if link is None:
            link = self._senders[address] = OutgoingLink(loop, address, self._io_forget,
                                                         self._ready)
            loop.owners.add(link)
        link.io_submit(item)

    def _io_forget(self, link: OutgoingLink) -> None:
        if self._senders.get(link.address) is link:
            del self._senders[link.address]
        self._reply_senders.pop(link.address, None)
        if self._loop is not None:
            self._loop.owners.discard(link)

    # -- replies -------------------------------------------------------------

    def _ensure_reply_link(self, loop: IoLoop, on_reply: ReplyHandler, deadline: float) -> None:
        """Attach this driver's reply queue on the first call and wait for it."""
        with self._lock:
            # The core passes one handler per cell; the latest one is used.
            self._on_reply = on_reply
            link = self._reply_link
            if link is None:
                layout, queue = _layout(loop), self._reply_queue
                link = self._reply_link = IncomingLink(
                    loop, lambda: layout.reply(queue), _REPLY_CREDIT, self._io_reply,
                    auto_accept=True)
                loop.submit(link.io_start)
        if not link.ready.wait(max(0.0, deadline - time.monotonic())):
            raise TransportError(f"cell {self.cell.name}: reply queue not ready in time")
        if link.error is not None:
            with self._lock:
                if self._reply_link is link:
                    self._reply_link = None
            raise link.error

    def _io_reply(self, link: IncomingLink, dlv: Delivery, message: Message) -> None:
        handler = self._on_reply
        body = message.body
        if handler is not None and isinstance(body, bytes | bytearray | memoryview):
            try:
                handler(bytes(body))
            except Exception:
                LOG.exception("cell %s: reply handler failed", self.cell.name)

    def _send_reply(self, address: str, body: bytes) -> None:
        """Queue a server's reply; a caller that has gone is silently skipped."""
        loop = self._loop
        if loop is None or loop.state == "closed":
            return
        deadline = time.monotonic() + self.cell.options.rpc_response_timeout
        item = Outgoing(body, deadline, None, False, _nothing, self._late)
        loop.submit(lambda: self._io_reply_send(loop, address, item))

    def _late(self, why: str) -> None:
        LOG.debug("cell %s: reply dropped: %s", self.cell.name, why)

    def _io_reply_send(self, loop: IoLoop, address: str, item: Outgoing) -> None:
        self._io_send(loop, address, item)
        if address in self._senders:
            self._reply_senders[address] = self._senders[address]
            self._reply_senders.move_to_end(address)
        while len(self._reply_senders) > _REPLY_SENDERS:
            oldest = next(iter(self._reply_senders.values()))
            if oldest.busy:
                break
            oldest.io_close_idle()

    # -- consuming -------------------------------------------------------------

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        deadline = time.monotonic() + self.cell.options.rpc_response_timeout
        loop = self._io()
        loop.wait_connected(deadline)
        # what the server holds unacknowledged stays within its queue size
        links = 3 if dest.host is not None else 2
        credit = max(1, min(self.cell.options.prefetch,
                            self.cell.options.server_queue_size // links))
        layout = _layout(loop)
        sub = QpidSubscription(loop, on_message, self._send_reply, layout.is_reply_address)
        ns, topic = self._namespace, dest.topic
        work = layout.durable(addressing.work_queue(ns, topic))
        sub.add(lambda: work, credit)
        if dest.host is not None:
            direct = layout.durable(addressing.direct_queue(ns, topic, dest.host))
            sub.add(lambda: direct, credit)
        key = addressing.fanout_key(ns, topic)
        sub.add(lambda: layout.fanout(key, addressing.fanout_queue(ns, topic)), credit)
        return self._started(loop, sub, deadline)

    def _started(self, loop: IoLoop, sub: QpidSubscription,
                 deadline: float) -> QpidSubscription:
        """Attach every link of ``sub``; returns once all are consuming."""
        for link in sub.links:
            loop.submit(link.io_start)
        try:
            for link in sub.links:
                if not link.ready.wait(max(0.0, deadline - time.monotonic())):
                    raise TransportError(f"cell {self.cell.name}: {link.address} not "
                                         "attached in time")
                if link.error is not None:
                    raise link.error
        except RPCError:
            sub.close()
            raise
        return sub

    # -- notifications ---------------------------------------------------------

    def _notification_layout(self, deadline: float) -> tuple[IoLoop, Layout]:
        """The connection and its layout, once connected.

        :raises ConfigError: v1 addresses (RabbitMQ 3.x), at once when
            configured so, else as soon as the broker said which it is.
        """
        if self.cell.options.amqp_addresses == "v1":
            raise notifications.unsupported(self.cell.name, "v1")
        loop = self._io()
        loop.wait_connected(deadline)
        layout = _layout(loop)
        if not layout.carries_notifications:
            raise notifications.unsupported(self.cell.name, layout.name)
        return loop, layout

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        """Send a durable notification to every pool queue of ``topic``
        (through ``amq.direct``); see :meth:`rpccore.Driver.notify` and
        :mod:`rpccore_qpid.notifications` for what the broker's answer means.

        :raises ConfigError: v1 addresses (RabbitMQ 3.x): no pools there.
        """
        deadline = self._deadline(deadline)
        loop, layout = self._notification_layout(deadline)
        address = self._notify_addresses.get(topic)
        if address is None:
            address = layout.notification_target(
                addressing.notification_key(self._namespace, topic))
            if len(self._notify_addresses) >= _ADDRESS_CACHE:
                self._notify_addresses.clear()
            self._notify_addresses[topic] = address
        self._acquire(deadline)
        future: Completion[None] | None = Completion() if confirm else None
        item = Outgoing(bytes(body), deadline, future, confirm, self._window.release,
                        self._returned, durable=True, refused=self._outcomes.refused)
        self._submit(loop, address, item, f"a notification of {topic!r}")

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume pool ``pool``'s queue of ``topic``, declared (bounded by
        the cell's retention options) and bound first; see
        :meth:`rpccore.Driver.listen`. Up to ``server_queue_size``
        notifications are delivered unacknowledged.

        :raises ConfigError: v1 addresses (RabbitMQ 3.x), or the queue
            exists with another ``x-overflow``.
        """
        deadline = time.monotonic() + self.cell.options.rpc_response_timeout
        loop, layout = self._notification_layout(deadline)
        ns = self._namespace
        node = layout.pool(addressing.pool_queue(ns, topic, pool),
                           addressing.notification_key(ns, topic),
                           notifications.pool_arguments(self.cell.options))
        sub = QpidSubscription(loop, on_message, self._send_reply, _no_reply_address)
        sub.add(lambda: node, max(1, self.cell.options.server_queue_size))
        return self._started(loop, sub, deadline)

    def delete_pool(self, topic: str, pool: str | None) -> None:
        """Delete the pool's queue and what it holds; see
        :meth:`rpccore.Driver.delete_pool`. Never raises (logs)."""
        queue = addressing.pool_queue(self._namespace, topic, pool)
        deadline = time.monotonic() + min(10.0, self.cell.options.rpc_response_timeout)
        try:
            loop, _ = self._notification_layout(deadline)
            status, answer = management.ask(loop, deletion(queue), deadline)
        except ConfigError:
            return  # v1 addresses: no pool can exist
        except Exception as exc:
            status, answer = 0, exc
        if status not in (200, 204):
            LOG.warning("cell %s: could not delete notification pool %r of topic %r (queue "
                        "%r): %s", self.cell.name, pool, topic, queue,
                        answer if status == 0 else f"{status} {answer}")

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close()
            LOG.info("cell %s: qpid driver closed", self.cell.name)


def _layout(loop: IoLoop) -> Layout:
    """The address format of ``loop``'s broker (known once it connected)."""
    layout = loop.layout
    if layout is None:
        raise TransportError(f"cell {loop.cell.name}: not connected yet")
    return layout
