"""The consuming side of notifications: ``rpc.listener(topics, endpoints)``."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.destination import Destination
from rpccore.errors import InvalidDestination, InvalidMessage
from rpccore.notify.batch import Batch, BatchCollector
from rpccore.notify.dispatch import NotificationDispatcher
from rpccore.notify.message import Notification, check_topics
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.driver import Incoming, Subscription
    from rpccore.interceptors import InterceptorChain

LOG = logging.getLogger(__name__)
_STOP = object()
#: requeues the backend could not do (the notification was dropped instead)
NOT_REQUEUED = "notifications_not_requeued"


def _check_pool(pool: str | None) -> str | None:
    if pool is not None and (type(pool) is not str or not pool):
        raise InvalidDestination(f"pool is None or a non-empty string, not {pool!r}")
    return pool


def _batch_shape(cell: Cell, size: int | None, timeout: float | None
                 ) -> tuple[int, float | None] | None:
    """``(size, timeout)`` of a batch listener, None for a plain one."""
    if size is None and timeout is None:
        return None
    limit = cell.options.server_queue_size
    if size is None:
        size = limit
    if type(size) is not int or size < 1:
        raise ValueError(f"batch_size is a positive integer, not {size!r}")
    if size > limit:
        # a backend delivers at most this many unacknowledged messages: a
        # larger batch would never fill
        raise ValueError(f"batch_size={size} is over the cell's server_queue_size={limit}, "
                         f"what a listener may hold unacknowledged; raise that option "
                         f"of cell {cell.name!r} or use a smaller batch")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"batch_timeout is a positive number of seconds, not {timeout!r}")
    return size, timeout


class Listener:
    """Consumes notifications of ``topics`` as one pool. Built by
    :meth:`rpccore.RPC.listener`.

    ``start()`` returns once consuming (a notification emitted after it
    returns reaches this listener's pool); ``stop()`` stops taking new ones,
    and those already taken are still run (a batch listener hands on its
    partial batch); ``wait()`` returns when they have been.

    The cell's ``server_workers`` threads run the endpoint methods, as for a
    server; the driver's threads only queue messages for them. A
    notification is acknowledged once its endpoint methods have run, even
    when one raised (the exception is logged), and requeued instead when one
    returned :data:`rpccore.REQUEUE` (where the backend cannot requeue, it is
    dropped, counted as ``notifications_not_requeued`` and logged).

    The ``RPC``'s interceptors see each notification (kind ``notify``,
    ``before_dispatch`` and ``after_dispatch``: OpenTelemetry makes a
    CONSUMER span of it) unless the listener takes batches.

    :raises InvalidDestination: bad ``topics`` or ``pool``.
    :raises ValueError: no endpoint has a method named after a priority, or
        a bad ``batch_size`` or ``batch_timeout``.
    """

    def __init__(self, cell: Cell, topics: Iterable[str] | str, endpoints: Iterable[object],
                 pool: str | None = None, batch_size: int | None = None,
                 batch_timeout: float | None = None,
                 interceptors: InterceptorChain | None = None) -> None:
        self.cell = cell
        self._chain = interceptors
        self.topics = check_topics(topics)
        self.pool = _check_pool(pool)
        self._dispatcher = NotificationDispatcher(endpoints)
        self._batch = _batch_shape(cell, batch_size, batch_timeout)
        self._nworkers: int = cell.options.server_workers
        #: what the driver delivered, for the workers (or the batch collector)
        self._incoming: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: batches for the workers (batch listeners only)
        self._batches: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._state = "new"
        self._received = cell.stats.counter("notifications_received")
        cell.stats.incr(NOT_REQUEUED, 0)  # listed in rpc.stats() from the start
        self._ratelog = RateLimitedLog(LOG)

    def __repr__(self) -> str:
        return (f"<Listener topics={list(self.topics)} pool={self.pool!r} "
                f"cell={self.cell.name!r} {self._state}>")

    @property
    def running(self) -> bool:
        return self._state == "running"

    def start(self) -> Listener:
        """Start the workers and listen on every topic. Returns the listener.

        :raises TransportError: the backend could not be reached.
        :raises ConfigError: the cell's driver is not installed, or does not
            carry notifications.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"listener is {self._state}; a listener starts once")
            driver = self.cell.driver()
            self._start_threads()
            try:
                for topic in self.topics:
                    self._subscriptions.append(
                        driver.listen(topic, self.pool, self._on_message(topic)))
            except BaseException:
                self._close_subscriptions()
                self._stop_threads()
                self._state = "stopped"
                raise
            self._state = "running"
        LOG.info("listening to notifications of %s as pool %r in cell %s",
                 ", ".join(self.topics), self.pool, self.cell.name)
        return self

    def _on_message(self, topic: str) -> Callable[[Incoming], None]:
        """What the driver calls with each message of ``topic``: the batch
        collector takes messages alone, the workers with their topic."""
        put = self._incoming.put
        if self._batch is not None:
            return put
        return lambda incoming: put((topic, incoming))

    def _start_threads(self) -> None:
        work = self._work if self._batch is None else self._work_batches
        name = f"rpccore-notify-{self.topics[0]}"
        for i in range(self._nworkers):
            self._threads.append(threading.Thread(target=work, daemon=True,
                                                  name=f"{name}-{i}"))
        if self._batch is not None:
            collector = BatchCollector(*self._batch, self._incoming, self._open,
                                       self._batches.put, _STOP)
            self._threads.append(threading.Thread(target=self._collect, args=(collector,),
                                                  daemon=True, name=f"{name}-batches"))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop listening; notifications already taken are still run."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
        self._close_subscriptions()
        self._stop_threads()
        LOG.info("stopped listening to notifications of %s in cell %s",
                 ", ".join(self.topics), self.cell.name)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait, after :meth:`stop`, until what was taken has run; True if it has."""
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _close_subscriptions(self) -> None:
        subscriptions, self._subscriptions = self._subscriptions, []
        for sub in subscriptions:
            try:
                sub.close()
            except Exception:
                LOG.exception("closing a notification subscription of %s failed",
                              ", ".join(self.topics))

    def _stop_threads(self) -> None:
        # behind everything already queued, so that it still runs
        if self._batch is None:
            for _ in range(self._nworkers):
                self._incoming.put(_STOP)
        else:
            self._incoming.put(_STOP)  # the collector passes it on to the workers

    # -- receiving ---------------------------------------------------------

    def _open(self, incoming: Incoming) -> Notification | None:
        """The notification in a message, checked; None when it is dropped
        (counted, logged and acknowledged here)."""
        env = self._decode(incoming)
        return None if env is None else Notification.from_envelope(env)

    def _decode(self, incoming: Incoming) -> dict[str, Any] | None:
        """The notification envelope in a message, checked; None when it is
        dropped (counted, logged and acknowledged here)."""
        cell = self.cell
        try:
            env = envelope.decode(incoming.body, max_size=cell.max_message_size,
                                  key=cell.secret_key)
        except envelope.BadSignature as exc:
            self._drop(incoming, "dropped_unsigned", exc)
            return None
        except InvalidMessage as exc:
            self._drop(incoming, "dropped_malformed", exc)
            return None
        if env["kind"] != "notification":
            self._drop(incoming, "dropped_malformed",
                       f"a {env['kind']} envelope is not a notification")
            return None
        if cell.secret_key is not None and self._too_old(env["ts"]):
            self._drop(incoming, "dropped_expired", f"notification {env['id']} of "
                       f"{env['ts']} is older than the cell's notification_ttl")
            return None
        next(self._received)
        return env

    def _too_old(self, timestamp: str) -> bool:
        # Signed notifications are not refused as replays (requeues and
        # at-least-once delivery repeat them by design), so a signed one is
        # good only as long as a broker would have kept it.
        try:
            emitted = datetime.fromisoformat(timestamp).timestamp()
        except ValueError:
            return True
        ttl: float = self.cell.options.notification_ttl
        return time.time() - emitted > ttl

    def _drop(self, incoming: Incoming, counter: str, why: object) -> None:
        self.cell.stats.incr(counter)
        self._ratelog.warning(counter, "cell %s: dropped a notification of %s: %s",
                              self.cell.name, ", ".join(self.topics), why)
        self._settle(incoming, False)

    def _settle(self, incoming: Incoming, requeue: bool) -> None:
        """Acknowledge or requeue; never raises."""
        try:
            if not requeue:
                incoming.ack()
            elif incoming.requeue():
                self.cell.stats.incr("notifications_requeued")
            else:
                self.cell.stats.incr(NOT_REQUEUED)
                self._ratelog.warning(
                    "requeue", "cell %s: the %s driver cannot requeue notifications; one "
                    "that an endpoint of %s returned REQUEUE for was dropped instead",
                    self.cell.name, self.cell.driver_name, ", ".join(self.topics))
        except Exception as exc:
            self._ratelog.warning("settle", "cell %s: settling a notification failed: %s",
                                  self.cell.name, exc)

    # -- the threads -------------------------------------------------------

    def _work(self) -> None:
        get = self._incoming.get
        while (item := get()) is not _STOP:
            topic: str
            incoming: Incoming
            topic, incoming = item  # type: ignore[misc]
            try:
                self._handle(topic, incoming)
            except Exception:  # a bad notification never kills a worker
                LOG.exception("unexpected error handling a notification of %s",
                              ", ".join(self.topics))

    def _handle(self, topic: str, incoming: Incoming) -> None:
        """Run the endpoint methods for one message of ``topic`` (through
        the interceptors, if any), then acknowledge or requeue it."""
        env = self._decode(incoming)
        if env is None:
            return
        dispatching = None
        if self._chain is not None:  # may refuse it (then no method runs)
            dispatching = self._chain.start_dispatch(
                self.cell, None, env, kind="notify", method=env["event"],
                dest=Destination(topic, None, self.cell.name, True))
            if dispatching is not None and dispatching.refusal is not None:
                self._settle(incoming, False)
                dispatching.finish(dispatching.refusal)
                return
        requeue = False
        try:
            requeue = self._dispatcher.dispatch(Notification.from_envelope(env))
        finally:
            self._settle(incoming, requeue)
            if dispatching is not None:
                dispatching.finish()

    def _collect(self, collector: BatchCollector) -> None:
        try:
            collector.run()
        except Exception:
            LOG.exception("the batch collector of %s failed; this listener takes no more "
                          "notifications", ", ".join(self.topics))
        finally:
            for _ in range(self._nworkers):
                self._batches.put(_STOP)

    def _work_batches(self) -> None:
        get = self._batches.get
        while (item := get()) is not _STOP:
            batch: Batch = item  # type: ignore[assignment]
            requeue: set[int] = set()
            try:
                requeue = self._dispatcher.dispatch_batch([note for _, note in batch])
            except Exception:
                LOG.exception("unexpected error handling a batch of notifications of %s",
                              ", ".join(self.topics))
            for index, (incoming, _) in enumerate(batch):
                self._settle(incoming, index in requeue)

