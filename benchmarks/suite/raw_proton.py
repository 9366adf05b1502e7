"""Raw python-qpid-proton Container code that ``benchmarks/bench_qpid.py`` lacks.

Plain AMQP 1.0 on RabbitMQ's plugin, no RPC layer: request/reply through two
named queues, one request in flight (round trips), and fanout to receivers on
``/topic/KEY``. (Casts come from ``bench_qpid.raw_proton_casts``.) Each trial
runs its own Container; connecting is not timed. The request and reply
queues are deleted on :meth:`RawProton.close`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from proton import Message
from proton.handlers import MessagingHandler

from benchmarks.suite.workload import Measured


def _body(size: int) -> bytes:
    return json.dumps({"method": "work", "args": {"i": 1, "payload": "x" * size}}).encode()


class _Trial:
    """Shared Container plumbing: connect with PLAIN, run, time out loudly."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.error: str | None = None
        self.started = 0.0
        self.ended = 0.0

    def connect(self, event: Any) -> Any:
        return event.container.connect(url=self.url, allowed_mechs="PLAIN")

    def run(self, handler: Any, timeout: float = 120.0) -> None:
        from proton.reactor import Container

        container = Container(handler)
        thread = threading.Thread(target=container.run, daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            container.stop()
            raise TimeoutError("raw proton trial did not finish")
        if self.error:
            raise RuntimeError(self.error)


class RawProton:
    """Round trips and fanout with bare proton; ``url`` is ``amqp://user:pass@host:port``."""

    def __init__(self, url: str) -> None:
        import proton  # noqa: F401  (fail here, at start, if it is not installed)

        self.url = url
        tag = uuid.uuid4().hex
        self.req_queue = f"bench-raw-req-{tag}"
        self.reply_queue = f"bench-raw-reply-{tag}"
        self.roundtrips(5, 100)  # declare the queues and check the broker once

    def roundtrips(self, n: int, size: int = 100) -> Measured:
        """``n`` sequential request/reply round trips through the broker."""
        from proton import Message
        from proton.handlers import MessagingHandler

        trial = _Trial(self.url)
        req, reply = f"/queue/{self.req_queue}", f"/queue/{self.reply_queue}"
        body = _body(size)
        latencies: list[float] = []

        class Handler(MessagingHandler):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__(prefetch=10)
                self.t0 = 0.0
                self.done = 0

            def on_start(self, event: Any) -> None:
                conn = trial.connect(event)
                self.server_in = event.container.create_receiver(conn, req)
                self.server_out = event.container.create_sender(conn, reply)
                self.client_in = event.container.create_receiver(conn, reply)
                self.client_out = event.container.create_sender(conn, req)

            def send_request(self) -> None:
                self.t0 = time.perf_counter()
                self.client_out.send(Message(body=body, reply_to=reply,
                                             correlation_id=str(self.done)))

            def on_sendable(self, event: Any) -> None:
                if event.sender.name == self.client_out.name and not trial.started:
                    trial.started = time.perf_counter()
                    self.send_request()

            def on_message(self, event: Any) -> None:
                if event.receiver.name == self.server_in.name:
                    msg = event.message
                    self.server_out.send(Message(body=msg.body,
                                                 correlation_id=msg.correlation_id))
                    return
                latencies.append(time.perf_counter() - self.t0)
                self.done += 1
                if self.done == n:
                    trial.ended = time.perf_counter()
                    event.connection.close()
                else:
                    self.send_request()

            def on_transport_error(self, event: Any) -> None:
                trial.error = f"transport error: {event.transport.condition}"

        trial.run(Handler())
        return n / (trial.ended - trial.started), latencies

    def fanout(self, n: int, receivers: int = 3) -> Measured:
        """``n`` messages to ``/topic/KEY``, each received by ``receivers`` receivers.

        Every receiver gets its own server-named queue bound to KEY on
        ``amq.topic``; sending starts once all of them are attached.
        """
        trial = _Trial(self.url)
        address = f"/topic/bench-raw-fan-{uuid.uuid4().hex}"
        trial.run(_FanoutHandler(trial, address, _body(100), n, receivers))
        return n / (trial.ended - trial.started), []

    def close(self) -> None:
        """Delete the queues this peer declared (through AMQP 0-9-1)."""
        import kombu

        parts = urlsplit(self.url)
        with kombu.Connection(f"amqp://{parts.netloc}//") as conn:
            channel = conn.channel()
            for name in (self.req_queue, self.reply_queue):
                try:
                    channel.queue_delete(name)
                except Exception:
                    channel = conn.channel()


class _FanoutHandler(MessagingHandler):  # type: ignore[misc]
    """A Container handler that attaches ``receivers`` receivers to
    ``address``, then sends ``n`` messages and stops once every receiver
    has all of them."""

    def __init__(self, trial: _Trial, address: str, body: bytes, n: int,
                 receivers: int) -> None:
        super().__init__(prefetch=500)
        self.trial, self.address, self.body = trial, address, body
        self.n, self.receivers = n, receivers
        self.attached: set[str] = set()
        self.sent = self.received = 0
        self.out: Any = None

    def on_start(self, event: Any) -> None:
        conn = self.trial.connect(event)
        for k in range(self.receivers):  # link names must differ
            event.container.create_receiver(conn, self.address, name=f"{self.address}-{k}")
        self.out = event.container.create_sender(conn, self.address)

    def on_link_opened(self, event: Any) -> None:
        if event.link.is_receiver:
            self.attached.add(event.link.name)
            self.send()

    def on_sendable(self, event: Any) -> None:
        self.send()

    def send(self) -> None:
        if len(self.attached) < self.receivers or self.out is None:
            return
        if not self.trial.started:
            self.trial.started = time.perf_counter()
        while self.out.credit and self.sent < self.n:
            self.out.send(Message(body=self.body))
            self.sent += 1

    def on_message(self, event: Any) -> None:
        self.received += 1
        if self.received == self.n * self.receivers:
            self.trial.ended = time.perf_counter()
            event.connection.close()

    def on_transport_error(self, event: Any) -> None:
        self.trial.error = f"transport error: {event.transport.condition}"
