"""One AMQP 0-9-1 connection: socket, TLS, handshake, channels, synchronous
methods, heartbeats.

:class:`AmqpConnection` is used by one thread only. Its owner writes frames
(:meth:`~AmqpConnection.write`), calls :meth:`~AmqpConnection.read` when the
socket is readable and :meth:`~AmqpConnection.tick` now and then; what the
broker sends on its own (deliveries, publisher confirms, returns, cancelled
consumers, closed channels, flow control) goes to a :class:`Listener`. A
synchronous method (:meth:`~AmqpConnection.call`) writes the method and reads
until its reply, handing everything else that arrives meanwhile to the
listener as usual.
"""

from __future__ import annotations

import select
import socket
import ssl
import time
from typing import Any

from rpccore_rabbit.wire import frames
from rpccore_rabbit.wire.errors import (
    ACCESS_REFUSED,
    AccessRefused,
    ChannelClosed,
    ConnectionClosed,
    ProtocolError,
)

_READ_SIZE = 256 * 1024
#: Reply codes of ``connection.close`` that another attempt cannot cure.
_REFUSALS = (ACCESS_REFUSED, 530)  # 530 NOT_ALLOWED: no such vhost, or not permitted

CLIENT_CAPABILITIES = {
    "publisher_confirms": True, "consumer_cancel_notify": True, "basic.nack": True,
    "connection.blocked": True, "authentication_failure_close": True,
    "exchange_exchange_bindings": True, "per_consumer_qos": True,
}


class Listener:
    """What the broker sends unasked; every method runs on the connection's
    thread. The defaults ignore it."""

    def on_deliver(self, channel: int, consumer_tag: str, delivery_tag: int,
                   redelivered: bool, properties: dict[str, Any], body: bytes) -> None:
        """A ``basic.deliver`` with its content."""

    def on_confirm(self, channel: int, delivery_tag: int, multiple: bool,
                   acked: bool) -> None:
        """A publisher confirm: ``basic.ack`` (``acked``) or ``basic.nack``."""

    def on_return(self, channel: int, reply_code: int, reply_text: str,
                  properties: dict[str, Any]) -> None:
        """A ``basic.return``: a mandatory message no queue took."""

    def on_cancel(self, channel: int, consumer_tag: str) -> None:
        """The broker ended a consumer (its queue was deleted, or its node
        went down)."""

    def on_channel_closed(self, channel: int, error: ChannelClosed) -> None:
        """The broker closed a channel outside a synchronous method (for
        example a publish to an exchange that does not exist)."""

    def on_blocked(self, reason: str | None) -> None:
        """``connection.blocked`` (a resource alarm; ``reason``) or
        ``connection.unblocked`` (None)."""


class AmqpConnection:
    """See the module docstring.

    :param heartbeat: seconds asked for (0: none); the broker may lower it.
    :param timeout: seconds connecting, a synchronous method or a blocked
        write may take.
    :param properties: extra client properties (``connection_name``...).
    """

    def __init__(self, listener: Listener, *, heartbeat: int, timeout: float,
                 properties: dict[str, Any] | None = None) -> None:
        self.listener = listener
        self.requested_heartbeat = heartbeat
        self.timeout = timeout
        self.client_properties: dict[str, Any] = {
            "product": "rpccore", "platform": "Python",
            "capabilities": dict(CLIENT_CAPABILITIES), **(properties or {})}
        self.sock: Any = None
        self.server_properties: dict[str, Any] = {}
        self.frame_max = 131072
        self.channel_max = 2047
        self.heartbeat = 0
        self._parser = frames.FrameParser()
        self._next_channel = 1
        self._open_channels: set[int] = set()
        self._last_sent = self._last_received = time.monotonic()

    # -- opening -----------------------------------------------------------

    def open(self, host: str, port: int, *, user: str, password: str, vhost: str,
             ssl_context: ssl.SSLContext | None = None,
             server_hostname: str | None = None) -> None:
        """Connect, authenticate (PLAIN) and open ``vhost``.

        :raises OSError: TCP or TLS failed (``ssl.SSLError`` is one).
        :raises AccessRefused: credentials or vhost refused.
        :raises ConnectionClosed: the broker closed the connection.
        :raises ProtocolError: not an AMQP 0-9-1 broker.
        """
        sock = socket.create_connection((host, port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
            self.sock = sock
            self._handshake(user, password, vhost)
        except BaseException:
            sock.close()
            self.sock = None
            raise

    def _handshake(self, user: str, password: str, vhost: str) -> None:
        self.write(frames.PROTOCOL_HEADER)
        start = self._expect(0, "connection.start")
        self.server_properties = start[2]
        mechanisms = start[3].split()
        if b"PLAIN" not in mechanisms:
            raise ProtocolError(f"the broker offers no PLAIN login ({start[3]!r})")
        response = b"\0" + user.encode("utf-8") + b"\0" + password.encode("utf-8")
        self.write(frames.method_frame(0, "connection.start_ok", self.client_properties,
                                       "PLAIN", response, "en_US"))
        channel_max, frame_max, heartbeat = self._expect(0, "connection.tune")
        self.channel_max = channel_max or 2047
        self.frame_max = min(frame_max or self.frame_max, self.frame_max)
        asked = self.requested_heartbeat
        self.heartbeat = 0 if not asked else min(asked, heartbeat) if heartbeat else asked
        self.write(frames.method_frame(0, "connection.tune_ok", self.channel_max,
                                       self.frame_max, self.heartbeat))
        self.write(frames.method_frame(0, "connection.open", vhost, "", False))
        self._expect(0, "connection.open_ok")

    def _expect(self, channel: int, name: str) -> list[Any]:
        """Read until method ``name`` arrives on ``channel`` (handshake and
        synchronous methods); everything else goes to the listener, also
        what arrived in the same read after the reply or a refusal.

        :raises ChannelClosed: the broker closed ``channel`` instead.
        """
        return self._expect_one_of(channel, (name,))[2]

    def _expect_one_of(self, channel: int, names: tuple[str, ...]) -> frames.Event:
        """:meth:`_expect` for a method with several possible replies
        (``basic.get``); returns the whole event."""
        deadline = time.monotonic() + self.timeout
        method = names[0].removesuffix("_ok")
        while True:
            events = self._receive(deadline)
            result: frames.Event | None = None
            refusal: ChannelClosed | None = None
            for event in events:
                if result is None and refusal is None and event[0] == channel \
                        and event[1] in names:
                    result = event
                    continue
                error = self._dispatch(event, channel if result is None else None, method)
                if error is not None:
                    refusal = error
            if refusal is not None:
                raise refusal
            if result is not None:
                return result

    def get(self, channel: int, queue: str) -> tuple[int, int] | None:
        """``basic.get`` one message of ``queue`` to be acknowledged (or
        rejected) by its delivery tag; its content is not returned.

        :returns: (delivery tag, messages left in the queue), or None when
            the queue is empty.
        """
        self.write(frames.method_frame(channel, "basic.get", 0, queue, False))
        _, name, args, _ = self._expect_one_of(channel, ("basic.get_ok", "basic.get_empty"))
        if name == "basic.get_empty":
            return None
        return args[0], args[4]

    # -- channels and methods ------------------------------------------------

    def channel(self) -> int:
        """Open a new channel; returns its number."""
        number = self._next_channel
        if number > self.channel_max:
            raise ProtocolError(f"out of channels ({self.channel_max})")
        self._next_channel += 1
        self.call(number, "channel.open", "")
        self._open_channels.add(number)
        return number

    def is_open(self, channel: int) -> bool:
        """Whether ``channel`` is open (the broker has not closed it)."""
        return channel in self._open_channels

    def call(self, channel: int, name: str, *args: Any) -> list[Any]:
        """Send method ``name`` and wait for its ``_ok`` reply; returns the
        reply's arguments.

        :raises ChannelClosed: the broker refused it and closed the channel.
        :raises ConnectionClosed, OSError: the connection failed.
        """
        self.write(frames.method_frame(channel, name, *args))
        return self._expect(channel, name + "_ok")

    def send(self, channel: int, name: str, *args: Any) -> None:
        """Send method ``name`` without waiting for anything."""
        self.write(frames.method_frame(channel, name, *args))

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole frames) to the socket; blocks at most
        ``timeout`` s on a broker that stopped reading."""
        self.sock.sendall(data)
        self._last_sent = time.monotonic()

    # -- reading ------------------------------------------------------------

    def read(self) -> None:
        """Read what the socket holds (call when it is readable) and hand it
        to the listener.

        :raises ConnectionClosed: the broker closed the connection.
        :raises ProtocolError: a corrupt stream.
        """
        for event in self._parser.feed(self._recv()):
            self._dispatch(event)

    def _recv(self) -> bytes:
        sock = self.sock
        try:
            data: bytes = sock.recv(_READ_SIZE)
        except (ssl.SSLWantReadError, BlockingIOError):
            return b""
        if not data:
            raise ConnectionClosed(0, "the broker closed the connection")
        pending = getattr(sock, "pending", None)  # TLS: decrypted but not read yet
        if pending is not None:
            while (more := pending()) > 0:
                data += sock.recv(more)
        self._last_received = time.monotonic()
        return data

    def _receive(self, deadline: float) -> list[frames.Event]:
        """Events of one read, waiting for the socket until ``deadline``."""
        left = deadline - time.monotonic()
        pending = getattr(self.sock, "pending", None)
        if (pending is None or not pending()) and not select.select([self.sock], [], [],
                                                                    max(0.0, left))[0]:
            raise TimeoutError(f"no answer from the broker in {self.timeout:g} s")
        return self._parser.feed(self._recv())

    def _dispatch(self, event: frames.Event, waiting_on: int | None = None,
                  method: str = "") -> ChannelClosed | None:
        """Hand ``event`` to the listener. A ``channel.close`` of the channel
        a synchronous method waits on is returned, not handed on."""
        channel, name, args, content = event
        listener = self.listener
        if name == "basic.deliver":
            assert content is not None
            listener.on_deliver(channel, args[0], args[1], args[2], content[0], content[1])
        elif name == "basic.ack" or name == "basic.nack":
            listener.on_confirm(channel, args[0], args[1], name == "basic.ack")
        elif name == "basic.return":
            assert content is not None
            listener.on_return(channel, args[0], args[1], content[0])
        elif name == "connection.close":
            self._send_quietly(0, "connection.close_ok")
            code, text = args[0], args[1]
            raise (AccessRefused if code in _REFUSALS else ConnectionClosed)(code, text)
        elif name == "channel.close":
            self._send_quietly(channel, "channel.close_ok")
            self._open_channels.discard(channel)
            error = ChannelClosed(args[0], args[1], method if channel == waiting_on else "")
            if channel == waiting_on:
                return error
            listener.on_channel_closed(channel, error)
        elif name == "basic.cancel":
            if not args[1]:
                self.send(channel, "basic.cancel_ok", args[0])
            listener.on_cancel(channel, args[0])
        elif name == "connection.blocked":
            listener.on_blocked(args[0] or "no reason given")
        elif name == "connection.unblocked":
            listener.on_blocked(None)
        elif name == "channel.flow":
            self.send(channel, "channel.flow_ok", args[0])
        # anything else (a late reply to a method given up on) is dropped
        return None

    def _send_quietly(self, channel: int, name: str) -> None:
        try:
            self.send(channel, name)
        except OSError:
            pass

    # -- heartbeats and closing ----------------------------------------------

    def tick(self, now: float) -> None:
        """Send a heartbeat when nothing was written for half the interval.

        :raises ConnectionClosed: nothing came from the broker for two
            intervals (it is taken as dead).
        """
        interval = self.heartbeat
        if not interval:
            return
        if now - self._last_received > 2 * interval:
            raise ConnectionClosed(0, f"no heartbeat from the broker for {2 * interval} s")
        if now - self._last_sent >= interval / 2:
            self.write(frames.HEARTBEAT)

    def close(self) -> None:
        """Close politely (``connection.close``, its reply awaited briefly),
        then the socket. Never raises."""
        sock = self.sock
        if sock is None:
            return
        try:
            self.timeout = min(self.timeout, 1.0)
            sock.settimeout(self.timeout)
            self.call(0, "connection.close", 200, "closing", 0, 0)
        except Exception:
            pass
        self.abort()

    def abort(self) -> None:
        """Close the socket without a word (the connection is lost anyway)."""
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
