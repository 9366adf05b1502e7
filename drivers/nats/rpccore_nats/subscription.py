"""A server's or a listener's live consumers in one process.

:class:`NatsSubscription` holds core NATS subscriptions (calls and plain
casts: topic work and host-directed subjects in a queue group, the fanout
subject for every server) and JetStream push consumers (confirmed casts,
notifications), and one :class:`~rpccore_nats.delivery.Deliverer` that hands
their messages to rpccore.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rpccore.driver import Incoming, Subscription
from rpccore_nats.calls import CAST_TOKEN, RECEIPT_AFTER
from rpccore_nats.delivery import Deliverer
from rpccore_nats.drops import DropCounter, delivery_numbers
from rpccore_nats.incoming import CoreIncoming, InFlight, StoredIncoming
from rpccore_nats.naming import QUEUE_GROUP
from rpccore_nats.quietlog import QuietLog

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription as NatsSub

    from rpccore.stats import CellStats
    from rpccore_nats.jetstream import Feed
    from rpccore_nats.loop import EventLoopThread, Outbox

LOG = logging.getLogger(__name__)
CAST_SUFFIX = "." + CAST_TOKEN
_QUIET = QuietLog(LOG)


class NatsSubscription(Subscription):
    """See the module docstring. Built and started on the loop thread."""

    def __init__(self, label: str, on_message: Callable[[Incoming], None],
                 loop_thread: EventLoopThread, outbox: Outbox, stats: CellStats,
                 drain_timeout: float, on_close: Callable[[NatsSubscription], None]) -> None:
        self.label = label
        self.deliverer = Deliverer(on_message, f"rpccore-nats {label}",
                                   loop_thread.loop.call_soon)
        self.in_flight = InFlight()
        self._loop_thread = loop_thread
        self._outbox = outbox
        self._stats = stats
        self._drain_timeout = drain_timeout
        self._on_close = on_close
        self._subs: list[NatsSub] = []
        self.closed = False
        #: calls not answered yet, oldest first, with when a receipt is due
        self._unanswered: collections.deque[tuple[float, CoreIncoming]] = collections.deque()
        self._retry: asyncio.Task[None] | None = None

    # -- building (loop thread) ------------------------------------------------

    async def add_core(self, client: Client, subject: str, shared: bool) -> None:
        """Consume ``subject``; ``shared``: one member of the queue group gets each."""
        sub = await client.subscribe(subject, queue=QUEUE_GROUP if shared else "",
                                     cb=self._on_core)
        self._subs.append(sub)

    async def add_feed(self, client: Client, feed: Feed,
                       drops: DropCounter | None = None) -> None:
        """Consume a JetStream push consumer's deliveries (its queue group)."""
        async def on_stored(msg: Msg) -> None:
            self._on_stored(msg, drops)

        sub = await client.subscribe(feed.deliver_subject, queue=QUEUE_GROUP, cb=on_stored)
        self._subs.append(sub)

    def retry_later(self, setup: Callable[[float], Awaitable[None]],
                    every: float = 5.0) -> None:
        """Run ``setup(deadline)`` again every ``every`` seconds until it
        works or the subscription closes (JetStream not there yet)."""
        async def again() -> None:
            while not self.closed:
                await asyncio.sleep(every)
                try:
                    await setup(time.monotonic() + every)
                except Exception as exc:  # still missing: try again later
                    LOG.debug("%s: JetStream set-up: %s", self.label, exc)
                    continue
                LOG.warning("%s: JetStream answers now: confirmed casts are consumed",
                            self.label)
                return

        self._retry = self._loop_thread.loop.create_task(again())

    # -- receiving (loop thread) -----------------------------------------------

    async def _on_core(self, msg: Msg) -> None:
        if self.closed:
            return
        reply = msg.reply
        if reply.endswith(CAST_SUFFIX):  # a plain cast: no receipt, no reply
            reply = ""
        incoming = CoreIncoming(msg.data, reply, self._outbox, self.deliverer)
        if reply:
            loop = self._loop_thread.loop
            if not self._unanswered:
                loop.call_later(RECEIPT_AFTER, self._send_receipts)
            self._unanswered.append((loop.time() + RECEIPT_AFTER, incoming))
        self.deliverer.put(incoming)

    def _send_receipts(self) -> None:
        """Receipts for the calls not answered within ``RECEIPT_AFTER`` (one
        timer for all of them, not one per call)."""
        unanswered = self._unanswered
        loop = self._loop_thread.loop
        now = loop.time()
        while unanswered and unanswered[0][0] <= now:
            unanswered.popleft()[1].send_receipt()
        if unanswered:
            loop.call_at(unanswered[0][0], self._send_receipts)

    def _on_stored(self, msg: Msg, drops: DropCounter | None) -> None:
        if self.closed:
            return  # not acknowledged: JetStream delivers it again
        reply = msg.reply
        if not reply.startswith("$JS.ACK."):
            # published straight to the deliver subject by someone else
            self._stats.incr("dropped_malformed")
            _QUIET.warning("foreign", "%s: dropped a message that JetStream did not deliver "
                           "(published straight to its delivery subject)", self.label)
            return
        if drops is not None:
            numbers = delivery_numbers(reply)
            if numbers is not None:
                delivered, stream_seq, delivery = numbers
                drops.see(delivery, stream_seq, delivered)
        self.deliverer.put(StoredIncoming(msg.data, reply, self._outbox, self.deliverer,
                                          self.in_flight))

    # -- closing ---------------------------------------------------------------

    async def _unsubscribe(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        for sub in self._subs:
            try:
                await sub.unsubscribe()
            except Exception as exc:  # a lost connection: nothing to undo
                LOG.debug("%s: unsubscribing: %s", self.label, exc)
        self._subs.clear()

    def close(self) -> None:
        """Stop consuming; what was received already is handed over first
        (for at most ``nats_drain_timeout``); JetStream messages left then
        are given back at once. Idempotent; never raises."""
        if self.closed:
            return
        try:
            self._loop_thread.run(self._unsubscribe(), self._drain_timeout)
        except Exception as exc:
            LOG.debug("%s: unsubscribing: %s", self.label, exc)
        self.closed = True
        for item in self.deliverer.close(self._drain_timeout):
            if isinstance(item, StoredIncoming):
                item.requeue()
        self._on_close(self)

