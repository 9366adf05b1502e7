"""One AMQP connection and the I/O thread that owns it.

A kombu/py-amqp connection and its channels must be used by one thread only.
:class:`Link` runs that thread. Other threads never touch the connection: they
put work on a queue (publishes, acknowledgements, tasks) and wake the thread
through a pipe. The thread publishes, reads what the broker sends (deliveries,
publisher confirms, returns), sends heartbeats and reconnects.

Publishing never waits for a round trip unless asked to: every message goes
out with the mandatory flag on a channel in confirm mode, and the thread
matches the broker's ``basic.ack``/``basic.nack``/``basic.return`` to the
message afterwards. A sender that must know (calls, confirmed casts) waits on
a :class:`Waiter`; a plain cast that comes back is only logged and counted.

When the connection drops, the thread reconnects with backoff across the URL's
hosts, runs the ``on_connected`` hooks (which re-declare queues and resume
consuming) and publishes again every message not yet confirmed whose deadline
has not passed (so confirmed sends are at-least-once).
"""

from __future__ import annotations

import collections
import logging
import os
import select
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import amqp
import kombu

from rpccore.errors import TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_rabbit import framing
from rpccore_rabbit.options import ConnectionParams

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

Hook = Callable[["Link"], None]

_READ_SIZE = 256 * 1024
_FRAME_HEADER = struct.Struct(">BHI")


class Waiter:
    """Completion of one confirmed publish or task, waited on by a caller."""

    __slots__ = ("event", "error", "result", "abandoned")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        self.abandoned = False

    def finish(self, error: BaseException | None = None, result: Any = None) -> None:
        self.error = error
        self.result = result
        self.event.set()

    def wait(self, deadline: float | None, what: str) -> Any:
        """Wait until finished; re-raise its error.

        :raises TransportError: not finished by ``deadline``.
        """
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.event.wait(timeout):
            self.abandoned = True
            raise TransportError(f"{what}: not done before the deadline")
        if self.error is not None:
            raise self.error
        return self.result


class Publish:
    """A message to publish, with what to do once the broker answers."""

    __slots__ = ("exchange", "routing_key", "body", "properties", "mandatory",
                 "waiter", "deadline", "label", "returned", "gated")

    def __init__(self, exchange: str, routing_key: str, body: bytes,
                 properties: dict[str, Any], mandatory: bool, waiter: Waiter | None,
                 deadline: float | None, label: str, gated: bool) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
        self.waiter = waiter
        self.deadline = deadline
        self.label = label
        self.returned = False
        self.gated = gated  # holds a permit of the unconfirmed-message limit


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
        self.ready = threading.Event()
        self.last_error = "not connected yet"
        self._kombu: kombu.Connection | None = None
        self._amqp: Any = None
        self._commands: collections.deque[Any] = collections.deque()
        self._sleeping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._out: list[bytes] = []  # frames built by this thread, written in batches
        self._unconfirmed: dict[int, Publish] = {}
        self._next_tag = 1
        self._permits = threading.BoundedSemaphore(params.max_unconfirmed)
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
        if not self.ready.wait(timeout) or self._closing:
            raise TransportError(f"RabbitMQ at {self.params.url_for_logs} unreachable: "
                                 f"{self.last_error}")

    def submit(self, item: Publish | Task | tuple[Any, ...]) -> None:
        """Hand ``item`` to the I/O thread."""
        self._commands.append(item)
        if self._sleeping and not self._closing:
            self._sleeping = False
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass

    def publish(self, item: Publish, gate: bool) -> None:
        """Queue ``item``; with ``gate``, first take a permit of the
        unconfirmed-message limit (waiting until ``item.deadline``).

        :raises TransportError: closed, or the limit stayed full.
        """
        if self._closing:
            raise TransportError("the rabbit driver is closed")
        if gate:
            timeout = None if item.deadline is None else max(0.0, item.deadline - time.monotonic())
            if not self._permits.acquire(timeout=timeout):
                raise TransportError(f"{self.params.max_unconfirmed} messages still wait "
                                     "for the broker's confirmation")
            item.gated = True
        self.submit(item)

    def run(self, fn: Callable[[Link], Any], deadline: float | None, what: str) -> Any:
        """Run ``fn(link)`` on the I/O thread once connected; return its result.

        :raises TransportError: not done by ``deadline``.
        """
        waiter = Waiter()
        self.start()
        self.submit(Task(fn, waiter))
        return waiter.wait(deadline, what)

    def close(self) -> None:
        """Close the connection and stop the thread; unfinished waiters fail."""
        self._closing = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(10)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- I/O thread ----------------------------------------------------------

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
        self._sleeping = True
        try:
            select.select([self._wake_r], [], [], seconds)
            self._drain_wake()
        finally:
            self._sleeping = False

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass

    def _connect(self) -> bool:
        params = self.params
        host = params.hosts[self._host_index % len(params.hosts)]
        self._host_index += 1
        sslopts = None
        if params.ssl_options is not None:
            sslopts = dict(params.ssl_options)
        try:
            conn = kombu.Connection(
                hostname=host.hostname, port=params.port_of(host),
                userid=host.username if host.username is not None else "guest",
                password=host.password if host.password is not None else "guest",
                virtual_host=params.virtual_host, ssl=sslopts or False,
                heartbeat=params.heartbeat, connect_timeout=params.connect_timeout,
                transport="pyamqp")
            conn.connect()
            raw = conn.connection
            raw.transport.sock.settimeout(max(params.connect_timeout, 1.0))
            # py-amqp polls the socket before every publish when it told the
            # broker it handles connection.blocked; this thread reads anyway.
            caps = dict(raw.client_properties.get("capabilities", {}))
            caps["connection.blocked"] = False
            raw.client_properties = {**raw.client_properties, "capabilities": caps}
            self._kombu, self._amqp = conn, raw
            self.publisher = raw.channel()
            self.publisher.confirm_select()
            self.publisher.events["basic_ack"].add(self._on_ack)
            self.publisher.events["basic_nack"].add(self._on_nack)
            self.publisher.events["basic_return"].add(self._on_return)
            self.consumer = raw.channel()
            self.consumer.basic_qos(0, params.prefetch_count, False)
            self.declarer = raw.channel()
            self._next_tag = 1
            self._out.clear()
            self.generation += 1
            for hook in list(self.hooks):
                hook(self)
        except Exception as exc:
            self.last_error = f"{host}: {_describe(exc)}"
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
        LOG.info("rabbit %s: connected to %s (vhost %r)", self.name, host,
                 params.virtual_host)
        self.ready.set()
        return True

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
            self._sleeping = True
            if commands:
                self._sleeping = False
                continue
            wait = max(0.0, next_tick - time.monotonic())
            readable, _, _ = select.select([sock, self._wake_r], [], [], wait)
            self._sleeping = False
            if self._wake_r in readable:
                self._drain_wake()
            if sock in readable:
                self._read_all()
            now = time.monotonic()
            if now >= next_tick:
                if hb:
                    amqp_conn.heartbeat_tick(rate=2)
                next_tick = now + tick

    def _read_all(self) -> None:
        """Read what the socket has and dispatch every complete frame.

        py-amqp's own reader makes three ``recv`` calls per frame and ends
        each drain with a failed read; this one makes one ``recv`` per wake-up.
        Unparsed bytes go back to py-amqp's read buffer, which its own
        synchronous calls (queue declarations...) read first, so both readers
        stay in step.
        """
        transport = self._amqp.transport
        sock = transport.sock
        try:
            data = sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, BlockingIOError):
            return
        if not data:
            raise ConnectionResetError("the broker closed the connection")
        pending = getattr(sock, "pending", None)
        if pending is not None:
            while (more := pending()) > 0:
                data += sock.recv(more)
        buf = transport._read_buffer + data if transport._read_buffer else data
        frames = []
        pos, size_all = 0, len(buf)
        while size_all - pos >= 8:
            frame_type, channel, size = _FRAME_HEADER.unpack_from(buf, pos)
            end = pos + 7 + size
            if end >= size_all:
                break
            if buf[end] != 0xCE:
                raise amqp.exceptions.UnexpectedFrame(f"bad frame end {buf[end]:#04x}")
            frames.append((frame_type, channel, buf[pos + 7:end]))
            pos = end + 1
        transport._read_buffer = buf[pos:]
        on_frame = self._amqp.on_inbound_frame
        for frame in frames:
            on_frame(frame)

    def _execute(self, item: Any) -> None:
        if isinstance(item, Publish):
            self._publish(item)
        elif isinstance(item, Task):
            if item.waiter is not None and item.waiter.abandoned:
                return
            if self._out:
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

    def reopen_declarer(self) -> None:
        """Replace the declaring channel if a failed declaration closed it."""
        try:
            if self.declarer is not None and self.declarer.is_open:
                return
        except Exception:
            pass
        self.declarer = self._amqp.channel()

    def _publish(self, item: Publish) -> None:
        if item.deadline is not None and time.monotonic() > item.deadline:
            self._forget(item, TransportError(f"{item.label}: deadline passed before publish"))
            return
        if item.waiter is not None and item.waiter.abandoned:
            self._forget(item, None)
            return
        tag = self._next_tag
        props = item.properties
        props["message_id"] = str(tag)
        try:
            frames = framing.publish_frames(self.publisher.channel_id, item.exchange,
                                            item.routing_key, item.mandatory, item.body,
                                            props, self._amqp.frame_max)
        except ValueError as exc:
            self._forget(item, TransportError(f"cannot send to {item.label}: {exc}"))
            return
        self._out.append(frames)
        self._next_tag = tag + 1
        if len(self._out) >= 128:
            self._flush()
        item.returned = False
        self._unconfirmed[tag] = item

    def _flush(self) -> None:
        """Write the frames built so far in one call."""
        data = b"".join(self._out)
        self._out.clear()
        self._amqp.transport.write(data)
        self._amqp.bytes_sent += 1

    def _forget(self, item: Publish, error: BaseException | None) -> None:
        if item.gated:
            item.gated = False
            self._permits.release()
        if item.waiter is not None and error is not None:
            item.waiter.finish(error)

    def _confirmed(self, tag: int, multiple: bool) -> list[Publish]:
        pending = self._unconfirmed
        if not multiple:
            item = pending.pop(tag, None)
            return [] if item is None else [item]
        done = []
        while pending:
            first = next(iter(pending))
            if first > tag:
                break
            done.append(pending.pop(first))
        return done

    def _on_ack(self, tag: int, multiple: bool) -> None:
        for item in self._confirmed(tag, multiple):
            if item.returned:
                self._forget(item, None)
                if item.waiter is not None:
                    item.waiter.finish(Undeliverable(f"nobody consumes {item.label}"))
                else:
                    self.stats.incr("returned")
                    _RATELOG.warning("returned", "rabbit %s: cast to %s dropped: nobody "
                                     "consumes it", self.name, item.label)
            else:
                self._forget(item, None)
                if item.waiter is not None:
                    item.waiter.finish()

    def _on_nack(self, tag: int, multiple: bool, *_: Any) -> None:
        for item in self._confirmed(tag, multiple):
            self.stats.incr("nacked")
            self._forget(item, TransportError(f"the broker refused a message for {item.label}"))
            if item.waiter is None:
                _RATELOG.warning("nacked", "rabbit %s: the broker refused a cast to %s",
                                 self.name, item.label)

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        try:
            tag = int(message.properties.get("message_id", ""))
        except ValueError:
            return
        item = self._unconfirmed.get(tag)
        if item is not None:
            item.returned = True

    def _lost(self, exc: BaseException) -> None:
        self.ready.clear()
        self.last_error = _describe(exc)
        LOG.warning("rabbit %s: connection lost: %s; reconnecting", self.name,
                    self.last_error)
        self._failing = True
        self._out.clear()
        self._drop_connection()
        # Publish again, first, whatever the broker has not confirmed.
        unconfirmed = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        self._commands.extendleft(reversed(unconfirmed))

    def _drop_connection(self) -> None:
        conn, self._kombu, self._amqp = self._kombu, None, None
        self.publisher = self.consumer = self.declarer = None
        if conn is not None:
            try:
                conn.collect()
            except Exception:
                pass

    def _shutdown(self) -> None:
        self.ready.clear()
        conn = self._kombu
        if conn is not None:
            try:
                conn.release()
            except Exception:
                pass
        self._drop_connection()
        error = TransportError("the rabbit driver is closed")
        for item in list(self._unconfirmed.values()):
            self._forget(item, error)
        self._unconfirmed.clear()
        while self._commands:
            item = self._commands.popleft()
            if isinstance(item, Publish):
                self._forget(item, error)
            elif isinstance(item, Task) and item.waiter is not None:
                item.waiter.finish(error)
        LOG.info("rabbit %s: closed", self.name)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
