"""The rabbit driver's own AMQP 0-9-1 connection (rpccore_rabbit.wire.protocol)
against a scripted broker on a local socket: handshake, refusals, channel and
connection errors, consumer cancellation, heartbeats. The live broker is
exercised by the conformance and integration suites."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rpccore_rabbit.wire import (
    AccessRefused,
    AmqpConnection,
    ChannelClosed,
    ConnectionClosed,
    Listener,
    frames,
)


class Recorder(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_deliver(self, channel: int, consumer_tag: str, delivery_tag: int,
                   redelivered: bool, properties: dict[str, Any], body: bytes) -> None:
        self.events.append(("deliver", channel, consumer_tag, delivery_tag, body))

    def on_confirm(self, channel: int, delivery_tag: int, multiple: bool, acked: bool) -> None:
        self.events.append(("confirm", channel, delivery_tag, acked))

    def on_cancel(self, channel: int, consumer_tag: str) -> None:
        self.events.append(("cancel", channel, consumer_tag))

    def on_channel_closed(self, channel: int, error: ChannelClosed) -> None:
        self.events.append(("closed", channel, error.code))

    def on_blocked(self, reason: str | None) -> None:
        self.events.append(("blocked", reason))


class FakeBroker:
    """Accepts one connection and answers by a script: ``script(broker)``
    runs on a thread of its own after the client's protocol header."""

    def __init__(self, script: Callable[[FakeBroker], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.parser = frames.FrameParser()
        self.received: list[frames.Event] = []
        self.backlog: list[frames.Event] = []
        self.conn: socket.socket | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, args=(script,), daemon=True)
        self.thread.start()

    def _serve(self, script: Callable[[FakeBroker], None]) -> None:
        try:
            self.conn, _ = self.listener.accept()
            header = self.conn.recv(8)
            assert header == frames.PROTOCOL_HEADER, header
            script(self)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def send(self, channel: int, name: str, *args: Any) -> None:
        assert self.conn is not None
        self.conn.sendall(frames.method_frame(channel, name, *args))

    def expect(self, name: str) -> list[Any]:
        """Read until the client sent method ``name``; its arguments."""
        assert self.conn is not None
        while True:
            while self.backlog:
                event = self.backlog.pop(0)
                self.received.append(event)
                if event[1] == name:
                    return event[2]
            data = self.conn.recv(65536)
            if not data:
                raise EOFError(f"the client closed the connection before sending {name}")
            self.backlog += self.parser.feed(data)

    def handshake(self, heartbeat: int = 60) -> None:
        self.send(0, "connection.start", 0, 9, {"product": "fake"}, b"PLAIN AMQPLAIN", b"en_US")
        self.expect("connection.start_ok")
        self.send(0, "connection.tune", 2047, 131072, heartbeat)
        self.expect("connection.open")
        self.send(0, "connection.open_ok", "")

    def open_channel(self) -> int:
        self.expect("channel.open")
        channel: int = self.received[-1][0]
        self.send(channel, "channel.open_ok", b"")
        return channel

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def run() -> Iterator[Callable[..., tuple[FakeBroker, AmqpConnection, Recorder]]]:
    brokers: list[FakeBroker] = []
    conns: list[AmqpConnection] = []

    def start(script: Callable[[FakeBroker], None], heartbeat: int = 10,
              password: str = "pw") -> tuple[FakeBroker, AmqpConnection, Recorder]:
        broker = FakeBroker(script)
        brokers.append(broker)
        recorder = Recorder()
        conn = AmqpConnection(recorder, heartbeat=heartbeat, timeout=2.0)
        conns.append(conn)
        conn.open("127.0.0.1", broker.port, user="u", password=password, vhost="vh")
        return broker, conn, recorder

    yield start
    for conn in conns:
        conn.abort()
    for broker in brokers:
        # The script may still be reading what the client sent last (its
        # close_ok, say): let it finish before its socket is closed under it.
        broker.thread.join(2)
        broker.close()
        if broker.error is not None:
            raise broker.error


def test_handshake_sends_plain_credentials_and_negotiates(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake(heartbeat=5)
        time.sleep(0.2)

    broker, conn, _ = run(script, heartbeat=10)
    broker.thread.join(2)
    start_ok = next(e for e in broker.received if e[1] == "connection.start_ok")[2]
    properties, mechanism, response, locale = start_ok
    assert (mechanism, response) == ("PLAIN", b"\0u\0pw")
    assert properties["capabilities"]["consumer_cancel_notify"] is True
    assert properties["capabilities"]["authentication_failure_close"] is True
    tune_ok = next(e for e in broker.received if e[1] == "connection.tune_ok")[2]
    assert tune_ok == [2047, 131072, 5]              # the lower heartbeat wins
    assert conn.heartbeat == 5
    assert next(e for e in broker.received if e[1] == "connection.open")[2][0] == "vh"
    assert conn.server_properties == {"product": "fake"}


def test_refused_credentials_raise_access_refused() -> None:
    def script(broker: FakeBroker) -> None:
        broker.send(0, "connection.start", 0, 9, {}, b"PLAIN", b"en_US")
        broker.expect("connection.start_ok")
        broker.send(0, "connection.close", 403, "ACCESS_REFUSED - Login was refused", 0, 0)
        broker.expect("connection.close_ok")

    broker = FakeBroker(script)
    try:
        conn = AmqpConnection(Listener(), heartbeat=0, timeout=2.0)
        with pytest.raises(AccessRefused) as info:
            conn.open("127.0.0.1", broker.port, user="u", password="bad", vhost="/")
        assert info.value.code == 403 and "ACCESS_REFUSED" in str(info.value)
        broker.thread.join(2)
        assert broker.error is None
    finally:
        broker.close()


def test_a_refused_method_closes_its_channel_and_later_events_still_arrive(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake()
        channel = broker.open_channel()
        broker.expect("queue.declare")
        # in one write: the refusal, then a confirm on another channel
        both = (frames.method_frame(channel, "channel.close", 406,
                                    "PRECONDITION_FAILED - inequivalent arg", 50, 10)
                + frames.method_frame(9, "basic.ack", 4, False))
        assert broker.conn is not None
        broker.conn.sendall(both)
        broker.expect("channel.close_ok")

    broker, conn, recorder = run(script)
    channel = conn.channel()
    with pytest.raises(ChannelClosed) as info:
        conn.call(channel, "queue.declare", 0, "q", False, True, False, False, False, {})
    assert info.value.code == 406 and info.value.method == "queue.declare"
    assert not conn.is_open(channel)
    assert recorder.events == [("confirm", 9, 4, True)]   # what came after the refusal


def test_what_the_broker_sends_unasked_reaches_the_listener(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake()
        broker.send(1, "basic.cancel", "ctag-1", False)
        broker.send(2, "channel.close", 404, "NOT_FOUND - no exchange", 60, 40)
        broker.send(0, "connection.blocked", "low on memory")
        broker.send(0, "connection.unblocked")
        broker.expect("basic.cancel_ok")
        broker.expect("channel.close_ok")
        broker.send(0, "connection.close", 320, "CONNECTION_FORCED - shutdown", 0, 0)
        broker.expect("connection.close_ok")

    broker, conn, recorder = run(script)
    with pytest.raises(ConnectionClosed) as info:
        while True:
            conn.read()
    assert info.value.code == 320 and not isinstance(info.value, AccessRefused)
    assert recorder.events == [("cancel", 1, "ctag-1"), ("closed", 2, 404),
                               ("blocked", "low on memory"), ("blocked", None)]


def test_heartbeats_are_sent_and_a_silent_broker_is_noticed(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake(heartbeat=1)
        assert broker.conn is not None
        broker.conn.settimeout(3)
        data = broker.conn.recv(100)
        assert data == frames.HEARTBEAT

    broker, conn, _ = run(script, heartbeat=1)
    now = time.monotonic()
    conn.tick(now + 0.6)                      # half an interval without writing: a heartbeat
    broker.thread.join(3)
    with pytest.raises(ConnectionClosed):
        conn.tick(now + 2.5)                  # nothing heard for over two intervals


def test_a_closed_socket_is_a_closed_connection(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake()
        assert broker.conn is not None
        broker.conn.close()

    broker, conn, _ = run(script)
    broker.thread.join(2)
    with pytest.raises(ConnectionClosed):
        conn.read()


def test_a_silent_broker_times_a_synchronous_method_out(run: Any) -> None:
    def script(broker: FakeBroker) -> None:
        broker.handshake()
        broker.open_channel()
        broker.expect("queue.declare")       # and never answer

    broker, conn, _ = run(script)
    channel = conn.channel()
    conn.timeout = 0.3
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        conn.call(channel, "queue.declare", 0, "q", False, True, False, False, False, {})
    assert time.monotonic() - start < 1.0
