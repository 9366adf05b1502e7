"""``NatsDriver``: rpccore over NATS (nats-py).

``transport_url = nats://[user:pass@]host:4222[,host2:4222...]``

Written only against rpccore's public driver interface
(:mod:`rpccore.driver`). One driver (one cell of one ``RPC`` object) runs one
asyncio loop thread with one connection (:mod:`rpccore_nats.runtime`).

- Calls: core NATS request/reply over one shared inbox
  (:mod:`rpccore_nats.calls`); no responders raises
  :class:`~rpccore.Undeliverable` at once. A caller that waits elsewhere
  (asyncio, :data:`rpccore.driver.caller_elsewhere`) gets ``send`` back as
  soon as nats-py has the request; no responders then reaches it later.
- Plain casts: core NATS, at most once: returned as soon as queued; one
  that no server took is counted as ``returned`` and logged.
- Confirmed casts: JetStream work-queue stream, acknowledged by the server
  after the endpoint ran (:mod:`rpccore_nats.jetstream`); with
  ``nats_cast_streams`` above 1, several, failed over between
  (:mod:`rpccore_nats.standby`).
- Notifications: JetStream interest streams, one durable consumer per pool.

Names of subjects, streams and consumers come from :mod:`rpccore_nats.naming`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore.destination import Destination
from rpccore.driver import Driver, Incoming, ReplyHandler, Subscription, caller_elsewhere
from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore_nats.calls import NOBODY
from rpccore_nats.drops import DropCounter
from rpccore_nats.jetstream import JetStreamMissing
from rpccore_nats.naming import Subjects
from rpccore_nats.options import connect_params, nats_opts
from rpccore_nats.runtime import Runtime
from rpccore_nats.standby import CastStreams, keep_spread
from rpccore_nats.subscription import NatsSubscription

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)

#: Seconds ``subscribe`` and ``listen`` wait for NATS (they have no deadline).
SUBSCRIBE_TIMEOUT = 30.0
#: Publishes waiting for the loop above which a call of an asyncio caller
#: waits until nats-py has it (see ``_call``).
BACKLOG = 8


class NatsDriver(Driver):
    """The ``nats`` driver; see the module docstring and the README."""

    detects_undeliverable = True
    stores_notifications = True
    leader_follower = True
    counters = ("nats_errors",)

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self.params = connect_params(cell)
        self.subjects = Subjects(cell.options.control_exchange)
        self.cast_streams = CastStreams(self.subjects, self.params.cast_streams)
        self._spreading: asyncio.Task[None] | None = None
        self._timeout: float = cell.options.rpc_response_timeout
        self._name = f"cell {cell.name} (nats {os.urandom(3).hex()})"
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None
        self._subscriptions: set[NatsSubscription] = set()
        self._subject_cache: dict[Destination, str] = {}
        self._notification_subjects: dict[str, str] = {}
        self._closed = False

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        return list(nats_opts)

    # -- plumbing --------------------------------------------------------------

    def _started(self) -> Runtime:
        runtime = self._runtime
        if runtime is not None:
            return runtime
        with self._lock:
            if self._closed:
                raise TransportError(f"{self._name}: the nats driver is closed")
            if self._runtime is None:
                self._runtime = Runtime(self.params, self.cell.stats, self._name,
                                        self._subscriptions)
            return self._runtime

    def _ready(self, deadline: float, doing: str) -> Runtime:
        if self._closed:
            raise TransportError(f"{self._name}: the nats driver is closed")
        runtime = self._started()
        runtime.wait_ready(deadline, doing)
        return runtime

    def _subject(self, dest: Destination) -> str:
        subject = self._subject_cache.get(dest)
        if subject is None:
            if dest.fanout:
                subject = self.subjects.fanout(dest.topic)
            elif dest.host is not None:
                subject = self.subjects.direct(dest.topic, dest.host)
            else:
                subject = self.subjects.work(dest.topic)
            if len(self._subject_cache) > 10_000:
                self._subject_cache.clear()
            self._subject_cache[dest] = subject
        return subject

    def connect(self, timeout: float) -> None:
        """Connect now; raises :class:`TransportError` saying why (without
        secrets) when that fails within ``timeout`` seconds."""
        self._ready(time.monotonic() + timeout, "connecting")

    # -- sending ---------------------------------------------------------------

    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        """See :meth:`rpccore.Driver.send` and the module docstring.

        A call returns once the first reply, or the server's receipt, came
        (so that no responders can be told); never past ``deadline``.
        """
        if deadline is None:
            deadline = time.monotonic() + self._timeout
        runtime = self._runtime
        if runtime is None or not runtime.connection.ready.is_set():
            runtime = self._ready(deadline, f"sending to {dest}")
        if on_reply is not None:
            self._call(runtime, dest, body, on_reply, deadline)
        elif confirm and not dest.fanout:
            self._confirmed_cast(runtime, dest, body, deadline)
        else:
            runtime.outbox.put((self._subject(dest), body, runtime.inbox.cast_reply))
            if confirm:  # a fanout: the server has it once the outbox is flushed
                runtime.run_until(self._flush(runtime), deadline, f"confirming a cast to {dest}")

    def send_nowait(self, dest: Destination, body: bytes, *, on_reply: ReplyHandler,
                    deadline: float, on_failure: Callable[[RPCError], None]) -> bool:
        """A call of an asyncio caller put in the outbox on the calling
        thread (the event loop's: a put never waits) when the connection is
        up; "no responders" or a failed publish goes to ``on_failure``.
        Otherwise False, nothing sent: :meth:`send` sends it from a thread,
        waiting for the connection. (A send thread waits for a busy loop
        past :data:`BACKLOG` publishes, so that many threads do not all want
        the GIL at once; the event loop, one thread, puts and moves on.)"""
        runtime = self._runtime
        if self._closed or runtime is None or not runtime.connection.ready.is_set():
            return False
        runtime.outbox.put(self._watched(runtime, dest, body, on_reply, on_failure, deadline))
        return True

    def _watched(self, runtime: Runtime, dest: Destination, body: bytes,
                 on_reply: ReplyHandler, late: Callable[[RPCError], None],
                 deadline: float) -> tuple[str, bytes, str]:
        """The outbox item of a call whose caller waits elsewhere: its reply
        subject is watched, and a failure goes to ``late``."""
        reply_to = runtime.inbox.watch(on_reply, late, f"{dest} in cell {self.cell.name}",
                                       deadline)
        return self._subject(dest), body, reply_to

    def _call(self, runtime: Runtime, dest: Destination, body: bytes,
              on_reply: ReplyHandler, deadline: float) -> None:
        inbox = runtime.inbox
        late = caller_elsewhere.get()
        if late is not None:  # asyncio: the caller waits for the replies elsewhere
            item = self._watched(runtime, dest, body, on_reply, late, deadline)
            outbox = runtime.outbox
            if len(outbox) < BACKLOG:
                outbox.put(item)
                return
            # the loop is behind: return once nats-py has the request, so
            # that senders which never wait do not all want the GIL at once
            # and hold up the caller's event loop (tens of ms in a burst of
            # 1,000 calls)
            handed: Completion[None] = Completion()
            outbox.put((*item, handed))
            handed.wait_until(deadline)
            return
        reply_to, wait = inbox.expect(on_reply)
        try:
            runtime.outbox.put((self._subject(dest), body, reply_to))
            heard = wait.wait(deadline - time.monotonic())
        finally:
            inbox.forget(reply_to)
        if wait.error is not None:
            raise wait.error
        if wait.value == NOBODY:
            raise Undeliverable(f"nobody consumes {dest} in cell {self.cell.name}")
        if not heard and not runtime.connection.ready.is_set():
            raise TransportError(f"{self._name}: not connected to NATS when the call to "
                                 f"{dest} gave up: {runtime.connection.last_error}")

    @staticmethod
    async def _flush(runtime: Runtime) -> None:
        await runtime.outbox.flush()
        await runtime.client.flush()

    def _confirmed_cast(self, runtime: Runtime, dest: Destination, body: bytes,
                        deadline: float) -> None:
        streams = self.cast_streams
        targets = streams.targets(dest)
        jetstream = runtime.jetstream

        async def publish() -> int | None:
            client = runtime.client
            subject, stream = targets[0]
            if not await jetstream.consumer_exists(client, stream, Subjects.consumer(subject)):
                return None
            return await jetstream.publish(client, targets, body, deadline)

        stored = typing.cast("int | None", runtime.run_until(
            publish(), deadline + 0.2, f"a confirmed cast to {dest}"))
        if stored is None:
            raise Undeliverable(f"no server ever consumed {dest} in cell {self.cell.name}")
        if stored:  # not the stream tried first: use that one from now on
            streams.stored(targets[stored][1])

    # -- consuming -------------------------------------------------------------

    def _new_subscription(self, runtime: Runtime, label: str,
                          on_message: Callable[[Incoming], None]) -> NatsSubscription:
        return NatsSubscription(label, on_message, runtime.loop_thread, runtime.outbox,
                                self.cell.stats, self.params.drain_timeout,
                                self._subscriptions.discard)

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume the topic (queue group), the (topic, host) subject, the
        fanout, and the JetStream consumers of confirmed casts for both;
        returns once the server has every subscription.

        :raises TransportError: NATS could not be reached or refused.
        """
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        runtime = self._ready(deadline, f"subscribing {dest}")
        sub = self._new_subscription(runtime, str(dest), on_message)
        subjects = self.subjects
        jetstream = runtime.jetstream
        queue_size: int = self.cell.options.server_queue_size

        async def confirmed_casts(until: float) -> None:
            client = runtime.client
            for k, stream in enumerate(self.cast_streams.names):
                await jetstream.ensure_stream(client, jetstream.cast_stream_config(subjects, k),
                                              until)
                confirmed = [subjects.confirmed_work(dest.topic, k)]
                if dest.host is not None:
                    confirmed.append(subjects.confirmed_direct(dest.topic, dest.host, k))
                for subject in confirmed:
                    feed, _ = await jetstream.ensure_feed(
                        client, stream, subject, None, new_only=False,
                        max_ack_pending=queue_size, deadline=until)
                    await sub.add_feed(client, feed)
            self._spread_leaders(runtime)

        async def start() -> None:
            client = runtime.client
            await sub.add_core(client, subjects.work(dest.topic), shared=True)
            if dest.host is not None:
                await sub.add_core(client, subjects.direct(dest.topic, dest.host), shared=True)
            await sub.add_core(client, subjects.fanout(dest.topic), shared=False)
            try:
                await confirmed_casts(deadline)
            except JetStreamMissing:
                LOG.warning("%s: the NATS server has no JetStream (yet?): %s serves calls "
                            "and casts; confirmed casts to it are refused as undeliverable "
                            "until JetStream answers", self._name, dest)
                sub.retry_later(confirmed_casts)
            await client.flush()

        self._start_subscription(runtime, sub, start(), deadline, f"subscribing {dest}")
        return sub

    def _spread_leaders(self, runtime: Runtime) -> None:
        """(loop thread) Keep the confirmed-cast streams' leaders on
        different nodes from now on, once per driver (several streams only)."""
        if self._spreading is None and self.cast_streams.count > 1:
            self._spreading = runtime.loop_thread.loop.create_task(keep_spread(
                lambda: runtime.client, self.cast_streams.names, self._name))

    def _start_subscription(self, runtime: Runtime, sub: NatsSubscription, start: Any,
                            deadline: float, doing: str) -> None:
        self._subscriptions.add(sub)
        try:
            runtime.run_until(start, deadline, doing)
        except Exception as exc:
            sub.close()
            if isinstance(exc, TransportError):
                raise
            raise TransportError(f"{self._name}: {doing} failed: {exc}") from exc

    # -- notifications ---------------------------------------------------------

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        """Publish a notification; see :meth:`rpccore.Driver.notify`.

        Plain: core NATS (JetStream stores it for every pool that ever
        listened). ``confirm``: returns once JetStream stored it; a topic no
        pool ever listened on is counted as ``returned``.
        """
        if deadline is None:
            deadline = time.monotonic() + self._timeout
        runtime = self._ready(deadline, f"notifying {topic!r}")
        subject = self._notification_subjects.get(topic)
        if subject is None:  # encoded once per topic: a quarter of a notify's time
            subject = self.subjects.notifications(topic)
            if len(self._notification_subjects) > 10_000:
                self._notification_subjects.clear()
            self._notification_subjects[topic] = subject
        if not confirm:
            runtime.outbox.put((subject, body, ""))
            return
        stream = Subjects.notification_stream(subject)
        stored = runtime.run_until(
            runtime.jetstream.publish(runtime.client, [(subject, stream)], body, deadline),
            deadline + 0.2, f"notifying {topic!r}")
        if stored is None:
            self.cell.stats.incr("returned")

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume pool ``pool``'s copy of ``topic``'s notifications; see
        :meth:`rpccore.Driver.listen` and :mod:`rpccore_nats.drops`."""
        deadline = time.monotonic() + SUBSCRIBE_TIMEOUT
        runtime = self._ready(deadline, f"listening to {topic!r}")
        label = f"notifications {topic!r} pool {pool!r}"
        sub = self._new_subscription(runtime, label, on_message)
        subject = self.subjects.notifications(topic)
        jetstream = runtime.jetstream
        options = self.cell.options

        def dropped(count: int) -> None:
            self.cell.stats.incr("notifications_dropped", count)
            LOG.warning("%s: %d notifications of topic %r were dropped before pool %r got "
                        "them (over notification_max_queue_length=%d, or older than "
                        "notification_ttl=%g s)", self._name, count, topic, pool,
                        options.notification_max_queue_length, options.notification_ttl)

        async def start() -> None:
            client = runtime.client
            config = jetstream.notification_stream_config(
                subject, options.notification_max_queue_length, options.notification_ttl)
            await jetstream.ensure_stream(client, config, deadline)
            assert config.name is not None
            feed, info = await jetstream.ensure_feed(
                client, config.name, subject, pool, new_only=True,
                max_ack_pending=options.server_queue_size, deadline=deadline)
            delivered = info.delivered
            drops = DropCounter(delivered.consumer_seq or 0 if delivered else 0,
                                delivered.stream_seq or 0 if delivered else 0, dropped)
            await sub.add_feed(client, feed, drops)
            await client.flush()

        self._start_subscription(runtime, sub, start(), deadline, label)
        return sub

    def delete_pool(self, topic: str, pool: str | None) -> None:
        """Delete the pool's durable consumer: JetStream drops what it kept
        for the pool alone and keeps nothing more for it. Logs, never raises."""
        subject = self.subjects.notifications(topic)
        stream = Subjects.notification_stream(subject)
        consumer = Subjects.consumer(subject, pool)
        try:
            runtime = self._ready(time.monotonic() + 5.0, f"deleting pool {pool!r}")
            runtime.run_until(runtime.jetstream.delete_consumer(runtime.client, stream, consumer),
                              time.monotonic() + 5.0, f"deleting pool {pool!r} of {topic!r}")
        except Exception as exc:  # documented: never raises
            LOG.warning("%s: could not delete notification pool %r of topic %r: %s",
                        self._name, pool, topic, exc)

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Close every subscription (handing over what arrived), drain the
        connection and stop the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runtime, self._runtime = self._runtime, None
        for sub in list(self._subscriptions):
            sub.close()
        if runtime is not None:
            runtime.close()
