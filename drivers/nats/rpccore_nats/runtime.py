"""Everything a driver runs on its loop thread, started on first use.

The driver's constructor must not connect (rpccore builds drivers lazily);
the first ``send``, ``subscribe``, ``listen``, ``notify`` or ``connect``
starts the loop thread and the connection here, once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.client import Client

from rpccore.errors import TransportError
from rpccore_nats.calls import ReplyInbox
from rpccore_nats.connection import NatsConnection, safe_text
from rpccore_nats.incoming import progress_payload
from rpccore_nats.jetstream import JetStreamAdmin
from rpccore_nats.loop import EventLoopThread, LoopTimeout, Outbox, OutboxItem
from rpccore_nats.quietlog import QuietLog

if TYPE_CHECKING:
    from rpccore.stats import CellStats
    from rpccore_nats.options import ConnectParams
    from rpccore_nats.subscription import NatsSubscription

LOG = logging.getLogger(__name__)
_QUIET = QuietLog(LOG)


class Runtime:
    """The loop thread, the connection, the outbox, the reply inbox and the
    JetStream helper of one driver."""

    def __init__(self, params: ConnectParams, stats: CellStats, name: str,
                 subscriptions: set[NatsSubscription]) -> None:
        self.params = params
        self.stats = stats
        self.name = name
        self.loop_thread = EventLoopThread(f"rpccore-nats-loop {name}")
        self.connection = NatsConnection(params, stats, name, self.loop_thread.loop)
        self.outbox = Outbox(self.loop_thread, self._publish, self._failed)
        self.inbox = ReplyInbox(f"_INBOX.{secrets.token_hex(11)}.")
        self.jetstream = JetStreamAdmin(params, name)
        self._subscriptions = subscriptions
        self._inbox_subscribed = False
        self.inbox.on_returned = self._returned
        self.connection.on_connected.append(self._after_connect)
        self.loop_thread.call_soon(self._start)

    def _start(self) -> None:
        self.outbox.start()
        self.connection.start()
        self.loop_thread.loop.create_task(self._extend_long_runners())
        self.loop_thread.loop.create_task(self._expire_watches())

    async def _after_connect(self) -> None:
        if not self._inbox_subscribed:  # nats-py subscribes it again on reconnects
            await self.connection.client.subscribe(self.inbox.wildcard,
                                                   cb=self.inbox.on_message)
            self._inbox_subscribed = True

    @property
    def client(self) -> Client:
        return self.connection.client

    async def _publish(self, subject: str, body: bytes, reply: str) -> None:
        await self.connection.client.publish(subject, body, reply)

    def _failed(self, item: OutboxItem, exc: BaseException) -> None:
        """An outbox publish that nats-py refused (loop thread)."""
        if isinstance(exc, nats.errors.MaxPayloadError):
            self.stats.incr("dropped_oversize")
            why = "larger than the server's max_payload"
        else:
            self.stats.incr("nacked")
            why = safe_text(exc)
        if type(item) is tuple:
            reply = item[2]
            if reply:
                self.inbox.fail(reply, TransportError(
                    f"{self.name}: could not publish a call: {why}"))
                return
        _QUIET.warning("publish", "%s: could not publish (%s); it is lost", self.name, why)

    def _returned(self) -> None:
        self.stats.incr("returned")
        _QUIET.warning("returned", "%s: a cast was dropped: no server consumes its "
                       "destination", self.name)

    async def _extend_long_runners(self) -> None:
        """Tell JetStream that messages still running are being worked on,
        so it does not deliver them again to another server meanwhile."""
        period = max(0.2, self.params.ack_wait / 3)
        progress = progress_payload()
        while True:
            await asyncio.sleep(period)
            for sub in list(self._subscriptions):
                for ack_subject in sub.in_flight.overdue(period):
                    self.outbox.put((ack_subject, progress, ""))

    async def _expire_watches(self) -> None:
        """Forget asyncio calls that heard nothing by their deadlines."""
        while True:
            await asyncio.sleep(1.0)
            self.inbox.expire()

    def wait_ready(self, deadline: float, doing: str) -> None:
        self.connection.wait_ready(deadline, doing)

    def run_until(self, coro: object, deadline: float, doing: str) -> object:
        """Run a coroutine on the loop, giving up at ``deadline``.

        :raises TransportError: not done by then.
        """
        try:
            return self.loop_thread.run(coro, deadline - time.monotonic())  # type: ignore[arg-type]
        except LoopTimeout:
            raise TransportError(f"{self.name}: {doing} did not finish in time "
                                 f"({self.connection.last_error})") from None

    def close(self) -> None:
        try:
            self.loop_thread.run(self.connection.close(), self.params.drain_timeout + 1)
        except Exception as exc:
            LOG.debug("%s: closing: %s", self.name, safe_text(exc))
        self.loop_thread.stop()
