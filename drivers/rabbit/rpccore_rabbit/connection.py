"""One AMQP connection and the I/O thread that owns it.

An :class:`~rpccore_rabbit.wire.AmqpConnection` is used by one thread only.
:class:`Link` runs that thread. Other threads never touch the connection: they
put work in a :class:`rpccore.driverkit.Mailbox` (publishes, acknowledgements,
tasks), which wakes the thread through a pipe only while it sleeps. The
thread writes frames in batches, reads what the broker sends (deliveries,
publisher confirms, returns: the :class:`Link` is the connection's
:class:`~rpccore_rabbit.wire.Listener`), sends heartbeats and reconnects.

When the connection drops, the thread reconnects with jittered backoff
across the URL's hosts (:mod:`.backoff`), runs the ``hooks`` (which declare
the exchange, the reply queue and servers' queues, and consume again) and
publishes again every message not yet confirmed whose deadline has not
passed (:mod:`.confirms`).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rpccore.driverkit import Completion, Mailbox
from rpccore.errors import ConfigError, TransportError
from rpccore_rabbit import wire
from rpccore_rabbit.backoff import Backoff
from rpccore_rabbit.broker_events import BrokerEvents, Consumer
from rpccore_rabbit.channels import open_channels
from rpccore_rabbit.confirms import ConfirmTracker, Publish, wait_for
from rpccore_rabbit.options import ConnectionParams

LOG = logging.getLogger(__name__)

Hook = Callable[["Link"], None]

_BATCH = 128  # frames built before a write even if more work is queued


class Task:
    """A function to run on the I/O thread with the connection up."""

    __slots__ = ("fn", "waiter")

    def __init__(self, fn: Callable[[Link], Any], waiter: Completion[Any] | None) -> None:
        self.fn = fn
        self.waiter = waiter


class Link(BrokerEvents):
    """One connection, its I/O thread and three channels: ``publisher``
    (confirm mode), ``consumer`` and ``declarer`` (declarations, kept apart
    because a refused declaration closes its channel).

    :param stats: the cell's counters (``reconnects``, ``returned``, ``nacked``).
    :ivar generation: counts connections; deliveries remember theirs so that
        acknowledgements for a dead channel are dropped.
    :ivar consumers: handlers by consumer tag (I/O thread only).
    :ivar cancelled: called with the tag of a consumer the broker ended.
    """

    def __init__(self, params: ConnectionParams, stats: Any, name: str) -> None:
        self.params = params
        self.stats = stats
        self.name = name
        self.hooks: list[Hook] = []
        self.cancelled: list[Callable[[Any, str], None]] = []
        self.generation = 0
        self.conn: wire.AmqpConnection | None = None
        self.publisher = self.consumer = self.declarer = 0
        self.consumers: dict[str, Consumer] = {}
        self.ready = threading.Event()
        self.last_error = "not connected yet"
        self.settled = threading.Event()  # connected, or refused for good
        self.fatal: Exception | None = None  # why, when refused for good
        self.confirms = ConfirmTracker(params.max_unconfirmed, stats, name)
        self._backoff = Backoff(params.reconnect_interval, params.reconnect_backoff,
                                params.reconnect_interval_max)
        self._mailbox: Mailbox[Publish | Task | tuple[Any, ...]] = Mailbox()
        #: (I/O thread) work taken from the mailbox, or put back to publish
        #: again after a reconnection, in the order it is done
        self._commands: collections.deque[Any] = collections.deque()
        self._out: list[bytes] = []  # frames built by this thread, written in batches
        self._closing = False
        #: set by close(): what a pause between connection attempts waits on
        #: (not the mailbox, which returns at once while work is queued)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._host_index = 0
        self._was_connected = False
        self._failing = False
        self._consumer_tags = 0

    # -- any thread ----------------------------------------------------------

    def start(self) -> None:
        """Start the I/O thread (once); it connects in the background."""
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"rpccore-rabbit-{self.name}")
                self._thread.start()

    def wait_ready(self, deadline: float | None) -> None:
        """Wait until connected.

        :raises TransportError: closed, refused credentials, or not connected
            by ``deadline``.
        :raises ConfigError: the broker refused this cell's settings (an
            exchange declared with other arguments).
        """
        if self.ready.is_set():
            return
        self.start()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # ``settled`` is set once connected or refused for good: retrying
        # cannot fix a wrong password, so say so at once.
        self.settled.wait(timeout)
        fatal = self.fatal
        if fatal is not None and not self.ready.is_set():
            if isinstance(fatal, ConfigError):
                raise fatal
            raise TransportError(f"RabbitMQ at {self.params.url_for_logs} refused the "
                                 f"credentials: {self.last_error}")
        if not self.ready.is_set() or self._closing:
            raise TransportError(f"RabbitMQ at {self.params.url_for_logs} unreachable: "
                                 f"{self.last_error}")

    def submit(self, item: Publish | Task | tuple[Any, ...]) -> None:
        """Hand ``item`` to the I/O thread."""
        self._mailbox.put(item)

    def publish(self, item: Publish, gate: bool) -> None:
        """Queue ``item``; with ``gate``, first take a permit of the
        unconfirmed-message limit (waiting until ``item.deadline``).

        :raises TransportError: closed, or the limit stayed reached.
        """
        if self._closing:
            raise TransportError("the rabbit driver is closed")
        if gate:
            self.confirms.gate(item)
        self.submit(item)

    def run(self, fn: Callable[[Link], Any], deadline: float | None, what: str) -> Any:
        """Run ``fn(link)`` on the I/O thread once connected; return its result.

        :raises TransportError: not done by ``deadline``, or ``fn`` failed on
            a channel or connection error.
        """
        waiter: Completion[Any] = Completion()
        self.start()
        self.submit(Task(fn, waiter))
        return wait_for(waiter, deadline, what)

    def close(self) -> None:
        """Close the connection and stop the thread; unfinished waiters fail."""
        self._closing = True
        self._closed.set()
        self._mailbox.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
            if not thread.is_alive():
                self._mailbox.close()

    # -- I/O thread: connecting ----------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._closing:
            if self.conn is None:
                if delay:
                    self._pause(delay)
                    if self._closing:
                        break
                if self._connect():
                    self._backoff.reset()
                    delay = 0.0
                else:
                    delay = self._backoff.after_failure()
                continue
            try:
                self._serve()
            except Exception as exc:  # any failure of the connection: start over
                if self._closing:
                    break
                self._lost(exc)
                delay = self._backoff.after_loss()
        self._shutdown()

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless closing (work queued meanwhile waits: the
        mailbox would wake this thread for every item, a spin for the whole
        outage while callers queue work)."""
        self._closed.wait(seconds)

    def _connect(self) -> bool:
        params = self.params
        host = params.hosts[self._host_index % len(params.hosts)]
        self._host_index += 1
        try:
            self.conn, channels = open_channels(self, params, host, self.name)
            self.publisher, self.consumer, self.declarer = channels
            self.confirms.restart()
            self.consumers.clear()
            self._out.clear()
            self.generation += 1
            for hook in list(self.hooks):
                hook(self)
        except Exception as exc:
            self._connect_failed(host, exc)
            return False
        if self._was_connected:
            self.stats.incr("reconnects")
        self._was_connected = True
        self._failing = False
        self.last_error = ""
        self.fatal = None
        LOG.info("rabbit %s: connected to %s (vhost %r)", self.name, host,
                 params.virtual_host)
        self.ready.set()
        self.settled.set()
        return True

    def _connect_failed(self, host: Any, exc: Exception) -> None:
        self.last_error = f"{host}: {_describe(exc)}"
        if isinstance(exc, wire.AccessRefused | ConfigError):
            self.fatal = exc
            self.settled.set()
        # One line per state change: the first failure, then only debug.
        log = LOG.debug if self._failing else LOG.warning
        log("rabbit %s: cannot connect to %s: %s; retrying", self.name, host, _describe(exc))
        self._failing = True
        self._drop_connection()

    def consume(self, queue: str, handler: Consumer, no_ack: bool = False,
                prefetch: int = 0) -> str:
        """Start consuming ``queue`` on the consumer channel (I/O thread);
        ``prefetch`` (if not 0) replaces the channel's for this consumer."""
        self._consumer_tags += 1
        tag = f"rpccore.{self._consumer_tags}"
        conn = self.conn
        assert conn is not None
        self.consumers[tag] = handler
        if prefetch:  # basic.qos (not global) applies to the consumers started after it
            conn.call(self.consumer, "basic.qos", 0, prefetch, False)
        conn.call(self.consumer, "basic.consume", 0, queue, tag, False, no_ack, False,
                  False, {})
        if prefetch:
            conn.call(self.consumer, "basic.qos", 0, self.params.prefetch_count, False)
        return tag

    def cancel(self, tag: str) -> None:
        """Stop consuming ``tag`` (I/O thread); later deliveries are requeued."""
        self.consumers.pop(tag, None)
        assert self.conn is not None
        self.conn.call(self.consumer, "basic.cancel", tag, False)

    def declare(self, name: str, *args: Any) -> list[Any]:
        """A synchronous method on the declaring channel (I/O thread).

        :raises wire.ChannelClosed: refused (the channel is replaced).
        """
        conn = self.conn
        assert conn is not None
        if not conn.is_open(self.declarer):  # a refusal closed the last one
            self.declarer = conn.channel()
        return conn.call(self.declarer, name, *args)

    # -- I/O thread: serving -------------------------------------------------

    def _serve(self) -> None:
        conn = self.conn
        assert conn is not None
        sock = conn.sock
        hb = conn.heartbeat
        tick = min(1.0, hb / 4.0) if hb else 1.0
        next_tick = time.monotonic() + tick
        commands = self._commands
        mailbox = self._mailbox
        confirms = self.confirms
        while not self._closing:
            # everything queued, including what comes meanwhile, before a wait
            while commands or not mailbox.empty():
                commands.extend(mailbox.take())
                while commands:
                    self._execute(commands.popleft())
                    if self._closing:
                        return
            if self._out:
                self._flush()
            wake = next_tick
            retry = confirms.next_retry()
            if retry is not None and retry < wake:
                wake = retry
            if mailbox.wait(max(0.0, wake - time.monotonic()), (sock,)):
                conn.read()
            now = time.monotonic()
            if retry is not None and now >= retry:
                commands.extend(confirms.due(now))
            if now >= next_tick:
                conn.tick(now)
                next_tick = now + tick

    def _execute(self, item: Any) -> None:
        if isinstance(item, Publish):
            self._publish(item)
        elif isinstance(item, Task):
            self._run_task(item)
        elif item[0] == "ack":
            _, generation, tag, requeue = item
            if generation == self.generation:
                if requeue is None:
                    self._out.append(wire.ack_frame(self.consumer, tag))
                else:
                    self._out.append(wire.method_frame(self.consumer, "basic.reject", tag,
                                                       requeue))

    def _run_task(self, item: Task) -> None:
        if item.waiter is not None and item.waiter.done:  # abandoned
            return
        self._flush()
        try:
            result = item.fn(self)
        except (wire.ChannelClosed, ConfigError) as exc:  # the connection lives on
            if item.waiter is not None:
                item.waiter.set_error(exc if isinstance(exc, ConfigError)
                                      else TransportError(_describe(exc)))
            return
        except (wire.AmqpError, OSError) as exc:
            if item.waiter is not None:
                item.waiter.set_error(TransportError(_describe(exc)))
            raise
        if item.waiter is not None:
            item.waiter.set_result(result)

    def _publish(self, item: Publish) -> None:
        confirms = self.confirms
        if item.deadline is not None and time.monotonic() > item.deadline:
            confirms.forget(item, TransportError(f"{item.label}: deadline passed before publish"))
            return
        if item.waiter is not None and item.waiter.done:  # abandoned
            confirms.forget(item, None)
            return
        props = item.properties
        props["message_id"] = str(confirms.next_tag)
        assert self.conn is not None
        try:
            frames = wire.publish_frames(self.publisher, item.exchange, item.routing_key,
                                         item.mandatory, item.body, props, self.conn.frame_max)
        except ValueError as exc:
            confirms.forget(item, TransportError(f"cannot send to {item.label}: {exc}"))
            return
        self._out.append(frames)
        confirms.sent(item)
        if len(self._out) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        """Write the frames built so far in one call."""
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        assert self.conn is not None
        self.conn.write(data)

    # -- I/O thread: losing and closing --------------------------------------

    def _lost(self, exc: BaseException) -> None:
        self.ready.clear()
        self.settled.clear()
        self.last_error = _describe(exc)
        LOG.warning("rabbit %s: connection lost: %s; reconnecting", self.name,
                    self.last_error)
        self._failing = True
        self._out.clear()
        self._drop_connection()
        # Publish again, first, whatever the broker has not confirmed.
        self._commands.extendleft(reversed(self.confirms.take_unconfirmed()))

    def _drop_connection(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()

    def _shutdown(self) -> None:
        self.ready.clear()
        self.settled.clear()
        conn, self.conn = self.conn, None
        if conn is not None:
            self.consumers.clear()  # what still arrives while closing goes back
            conn.close()
        error = TransportError("the rabbit driver is closed")
        for item in self.confirms.take_unconfirmed():
            self.confirms.forget(item, error)
        self._commands.extend(self._mailbox.take())
        while self._commands:
            item = self._commands.popleft()
            if isinstance(item, Publish):
                self.confirms.forget(item, error)
            elif isinstance(item, Task) and item.waiter is not None:
                item.waiter.set_error(error)
        LOG.info("rabbit %s: closed", self.name)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
