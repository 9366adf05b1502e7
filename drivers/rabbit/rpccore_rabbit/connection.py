"""One AMQP connection and the I/O thread that owns it.

A kombu/py-amqp connection and its channels must be used by one thread only.
:class:`Link` runs that thread. Other threads never touch the connection: they
put work on a queue (publishes, acknowledgements, tasks) and wake the thread
through a pipe. The thread writes frames in batches, reads what the broker
sends (deliveries, publisher confirms, returns: :class:`~.framing.FrameReader`),
sends heartbeats and reconnects.

When the connection drops, the thread reconnects with backoff across the
URL's hosts, runs the ``hooks`` (which declare the exchange, the reply queue
and servers' queues, and consume again) and publishes again every message not
yet confirmed whose deadline has not passed (:mod:`.confirms`).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp
from kombu.connection import Connection as KombuConnection

from rpccore.errors import TransportError
from rpccore_rabbit import framing
from rpccore_rabbit.confirms import ConfirmTracker, Publish, Waiter
from rpccore_rabbit.mailbox import Mailbox
from rpccore_rabbit.options import ConnectionParams

LOG = logging.getLogger(__name__)

Hook = Callable[["Link"], None]
#: ``handler(delivery_tag, body, properties)`` for one consumer tag
Consumer = Callable[[int, bytes, dict[str, Any]], None]

_READ_SIZE = 256 * 1024
_BATCH = 128  # frames built before a write even if more work is queued


class Task:
    """A function to run on the I/O thread with the connection up."""

    __slots__ = ("fn", "waiter")

    def __init__(self, fn: Callable[[Link], Any], waiter: Waiter | None) -> None:
        self.fn = fn
        self.waiter = waiter


class Link:
    """One connection, its I/O thread and three channels: ``publisher``
    (confirm mode), ``consumer`` and ``declarer`` (queue declarations, kept
    apart because a failed declaration closes its channel).

    :param stats: the cell's counters (``reconnects``, ``returned``, ``nacked``).
    :ivar generation: counts connections; deliveries remember theirs so that
        acknowledgements for a dead channel are dropped.
    :ivar consumers: handlers by consumer tag (I/O thread only).
    """

    def __init__(self, params: ConnectionParams, stats: Any, name: str) -> None:
        self.params = params
        self.stats = stats
        self.name = name
        self.hooks: list[Hook] = []
        self.generation = 0
        self.publisher: Any = None
        self.consumer: Any = None
        self.declarer: Any = None
        self.consumers: dict[str, Consumer] = {}
        self.ready = threading.Event()
        self.last_error = "not connected yet"
        self.settled = threading.Event()  # connected, or credentials refused
        self.refused = False
        self.confirms = ConfirmTracker(params.max_unconfirmed, stats, name)
        self._kombu: Any = None  # kombu.Connection
        self._amqp: Any = None
        self._reader: framing.FrameReader | None = None
        self._mailbox = Mailbox()
        self._commands = self._mailbox.items
        self._out: list[bytes] = []  # frames built by this thread, written in batches
        self._closing = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._host_index = 0
        self._was_connected = False
        self._failing = False

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

        :raises TransportError: closed, or not connected by ``deadline``.
        """
        if self.ready.is_set():
            return
        self.start()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        # ``settled`` is set once connected or once the broker refused the
        # credentials: retrying cannot fix a wrong password, so say so at once.
        self.settled.wait(timeout)
        if self.refused and not self.ready.is_set():
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
        waiter = Waiter()
        self.start()
        self.submit(Task(fn, waiter))
        return waiter.wait(deadline, what)

    def close(self) -> None:
        """Close the connection and stop the thread; unfinished waiters fail."""
        self._closing = True
        self._mailbox.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
            if not thread.is_alive():
                self._mailbox.release()

    # -- I/O thread: connecting ----------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._closing:
            if self._amqp is None:
                if delay:
                    self._pause(delay)
                    if self._closing:
                        break
                if self._connect():
                    delay = 0.0
                else:
                    delay = min(max(delay * self.params.reconnect_backoff,
                                    self.params.reconnect_interval),
                                self.params.reconnect_interval_max)
                continue
            try:
                self._serve()
            except Exception as exc:  # any failure of the connection: start over
                if self._closing:
                    break
                self._lost(exc)
        self._shutdown()

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless closing (work queued meanwhile waits)."""
        end = time.monotonic() + seconds
        while not self._closing and (left := end - time.monotonic()) > 0:
            self._mailbox.wait(None, left)

    def _connect(self) -> bool:
        params = self.params
        host = params.hosts[self._host_index % len(params.hosts)]
        self._host_index += 1
        try:
            conn = KombuConnection(  # type: ignore[no-untyped-call]
                hostname=host.hostname, port=params.port_of(host),
                userid=host.username if host.username is not None else "guest",
                password=host.password if host.password is not None else "guest",
                virtual_host=params.virtual_host,
                ssl=dict(params.ssl_options) if params.ssl_options is not None else False,
                heartbeat=params.heartbeat, connect_timeout=params.connect_timeout,
                transport="pyamqp")
            self._kombu = conn
            # One attempt: this loop does the retrying (kombu's connect()
            # would sleep 2 s and try once more).
            conn.ensure_connection(max_retries=0)  # type: ignore[no-untyped-call]
            raw = self._amqp = conn.connection
            # Synchronous calls and writes give up on a silent broker.
            raw.transport.sock.settimeout(max(params.connect_timeout, 1.0))
            # py-amqp polls the socket before every publish when it told the
            # broker it handles connection.blocked; this thread reads anyway.
            caps = dict(raw.client_properties.get("capabilities", {}))
            caps["connection.blocked"] = False
            raw.client_properties = {**raw.client_properties, "capabilities": caps}
            self.publisher = raw.channel()
            self.publisher.confirm_select()
            self.consumer = raw.channel()
            self.consumer.basic_qos(0, params.prefetch_count, False)
            self.declarer = raw.channel()
            self._reader = framing.FrameReader(
                raw, self.publisher.channel_id, self.consumer.channel_id, self._deliver,
                self.confirms.on_ack, self.confirms.on_nack, self.confirms.on_return)
            # py-amqp's own reader (during synchronous calls) ends up here too.
            self.publisher.events["basic_ack"].add(self.confirms.on_ack)
            self.publisher.events["basic_nack"].add(lambda tag, multiple, *_: (
                self.confirms.on_nack(tag, multiple)))
            self.publisher.events["basic_return"].add(lambda exc, ex, key, msg: (
                self.confirms.on_return(msg.properties.get("message_id"))))
            self.confirms.restart()
            self.consumers.clear()
            self._out.clear()
            self.generation += 1
            for hook in list(self.hooks):
                hook(self)
        except Exception as exc:
            self.last_error = f"{host}: {_describe(exc)}"
            if "ACCESS_REFUSED" in self.last_error:
                self.refused = True
                self.settled.set()
            # One line per state change: the first failure, then only debug.
            log = LOG.debug if self._failing else LOG.warning
            log("rabbit %s: cannot connect to %s: %s; retrying", self.name, host,
                _describe(exc))
            self._failing = True
            self._drop_connection()
            return False
        if self._was_connected:
            self.stats.incr("reconnects")
        self._was_connected = True
        self._failing = False
        self.last_error = ""
        self.refused = False
        LOG.info("rabbit %s: connected to %s (vhost %r)", self.name, host,
                 params.virtual_host)
        self.ready.set()
        self.settled.set()
        return True

    def consume(self, queue: str, handler: Consumer, no_ack: bool = False) -> str:
        """Start consuming ``queue`` on the consumer channel (I/O thread)."""

        def from_amqp(message: Any) -> None:  # deliveries py-amqp reads itself
            handler(message.delivery_info["delivery_tag"], message.body, message.properties)

        tag: str = self.consumer.basic_consume(queue, callback=from_amqp, no_ack=no_ack)
        self.consumers[tag] = handler
        return tag

    def cancel(self, tag: str) -> None:
        """Stop consuming ``tag`` (I/O thread); later deliveries are requeued."""
        self.consumers.pop(tag, None)
        self.consumer.basic_cancel(tag)

    def reopen_declarer(self) -> None:
        """Replace the declaring channel if a failed declaration closed it."""
        if self.declarer is None or not self.declarer.is_open:
            self.declarer = self._amqp.channel()

    # -- I/O thread: serving -------------------------------------------------

    def _serve(self) -> None:
        amqp_conn = self._amqp
        sock = amqp_conn.transport.sock
        hb = self.params.heartbeat
        tick = min(1.0, hb / 4.0) if hb else 1.0
        next_tick = time.monotonic() + tick
        commands = self._commands
        while not self._closing:
            while commands:
                self._execute(commands.popleft())
                if self._closing:
                    return
            if self._out:
                self._flush()
            if self._mailbox.wait(sock, max(0.0, next_tick - time.monotonic())):
                self._read(sock)
            now = time.monotonic()
            if now >= next_tick:
                if hb:
                    amqp_conn.heartbeat_tick(rate=2)
                next_tick = now + tick

    def _read(self, sock: Any) -> None:
        try:
            data = sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        if not data:
            raise ConnectionResetError("the broker closed the connection")
        pending = getattr(sock, "pending", None)  # TLS: decrypted but not read
        if pending is not None:
            while (more := pending()) > 0:
                data += sock.recv(more)
        assert self._reader is not None
        self._reader.feed(data)

    def _deliver(self, consumer_tag: str, delivery_tag: int, body: bytes,
                 properties: dict[str, Any]) -> None:
        handler = self.consumers.get(consumer_tag)
        if handler is None:  # cancelled meanwhile: back to the queue
            self._flush()
            self.consumer.basic_reject(delivery_tag, requeue=True)
            return
        handler(delivery_tag, body, properties)

    def _execute(self, item: Any) -> None:
        if isinstance(item, Publish):
            self._publish(item)
        elif isinstance(item, Task):
            if item.waiter is not None and item.waiter.abandoned:
                return
            self._flush()
            try:
                result = item.fn(self)
            except (amqp.exceptions.ChannelError, amqp.exceptions.ConnectionError,
                    OSError) as exc:
                if item.waiter is not None:
                    item.waiter.finish(TransportError(_describe(exc)))
                if isinstance(exc, amqp.exceptions.ChannelError):
                    self.reopen_declarer()
                    return
                raise
            if item.waiter is not None:
                item.waiter.finish(result=result)
        elif item[0] == "ack":
            _, generation, tag, requeue = item
            if generation == self.generation:
                if requeue is None:
                    self._out.append(framing.ack_frame(self.consumer.channel_id, tag))
                else:
                    self._flush()
                    self.consumer.basic_reject(tag, requeue=requeue)

    def _publish(self, item: Publish) -> None:
        confirms = self.confirms
        if item.deadline is not None and time.monotonic() > item.deadline:
            confirms.forget(item, TransportError(f"{item.label}: deadline passed before publish"))
            return
        if item.waiter is not None and item.waiter.abandoned:
            confirms.forget(item, None)
            return
        props = item.properties
        props["message_id"] = str(confirms.next_tag)
        try:
            frames = framing.publish_frames(self.publisher.channel_id, item.exchange,
                                            item.routing_key, item.mandatory, item.body,
                                            props, self._amqp.frame_max)
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
        self._amqp.transport.write(data)
        self._amqp.bytes_sent += 1

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
        conn, self._kombu, self._amqp = self._kombu, None, None
        self.publisher = self.consumer = self.declarer = None
        self._reader = None
        if conn is not None:
            try:
                conn.collect()
            except Exception:
                pass

    def _shutdown(self) -> None:
        self.ready.clear()
        self.settled.clear()
        conn = self._kombu
        if conn is not None:
            try:
                conn.release()
            except Exception:
                pass
        self._drop_connection()
        error = TransportError("the rabbit driver is closed")
        for item in self.confirms.take_unconfirmed():
            self.confirms.forget(item, error)
        while self._commands:
            item = self._commands.popleft()
            if isinstance(item, Publish):
                self.confirms.forget(item, error)
            elif isinstance(item, Task) and item.waiter is not None:
                item.waiter.finish(error)
        LOG.info("rabbit %s: closed", self.name)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
