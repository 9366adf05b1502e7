"""The "notifications per second" scenario: rpccore's notifier and listener,
and oslo.messaging's Notifier as the rabbit peer.

A trial emits ``n`` notifications (priority ``info``, one topic, one
listener pool) and its rate counts until the listener has received every
one, as the cast scenario counts until the server has. The guard compares
it with the same driver's casts in the same run (target: 0.8x) and, on
rabbit, with oslo.messaging's Notifier and notification listener (target:
3x).

The scenario runs for the drivers that carry notifications (their class
overrides ``Driver.notify``): nothing needs switching on when a driver
gains them. Each side sets itself up, and sends one notification through,
on its first trial before the clock starts.

Some drivers carry notifications only on some brokers
(:data:`BROKER_DEPENDENT`): qpid needs RabbitMQ 4, and a qpid cell on
RabbitMQ 3.x raises ``ConfigError`` when its listener starts. That set-up
error becomes :class:`NotCarriedHere`, and the scenario is reported as not
measured on this broker (a log line says why; the guard's target reads
``not measured``), never as a figure or a failed run. Any other driver's
``ConfigError`` stays an error.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

from benchmarks.measure import Measured
from benchmarks.suite.cells import CellFactory
from benchmarks.suite.endpoint import Counter
from rpccore import RPC, Driver
from rpccore.errors import ConfigError
from rpccore.plugins import load_driver

EVENT = "bench.event"

#: drivers whose notifications depend on the broker, and on which
BROKER_DEPENDENT = {"qpid": "qpid carries notifications on RabbitMQ 4 only (v2 addresses)"}


class NotCarriedHere(Exception):
    """The driver carries notifications, but not on the benchmark's broker:
    the scenario is not measured there (see the module docstring)."""


def carries_notifications(driver: str) -> bool:
    """Whether the installed driver ``driver`` implements notifications."""
    try:
        cls = load_driver(driver)
    except Exception:
        return False
    return bool(cls.notify is not Driver.notify and cls.listen is not Driver.listen)


class NotificationEndpoint:
    """Counts what it receives."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        self.counter.hit()


def _timed(emit: Callable[[int], None], counter: Counter, already: int, n: int) -> Measured:
    start = time.perf_counter()
    for i in range(n):
        emit(i)
    counter.wait_for(already + n)
    return n / (time.perf_counter() - start), []


class RpccoreNotifications:
    """A notifier and a listener of the benchmark's cell."""

    def __init__(self, factory: CellFactory, make_rpc: Callable[[str | None], RPC]) -> None:
        self.counter = Counter()
        topic = f"bench-notify-{uuid.uuid4().hex[:8]}"
        listening = make_rpc(None)
        try:
            listening.listener([topic], [NotificationEndpoint(self.counter)],
                               pool="bench").start()
        except ConfigError as exc:
            why = BROKER_DEPENDENT.get(factory.driver)
            if why is None:
                raise
            raise NotCarriedHere(f"{why}; the broker here refused: {exc}") from exc
        self.notifier = make_rpc(None).notifier("bench.publisher", topics=[topic])
        self.sent = 1
        self.notifier.info({}, EVENT, {"i": 0, "payload": ""})
        self.counter.wait_for(1, timeout=60)

    def run(self, n: int, size: int = 100) -> Measured:
        payload = "x" * size
        info = self.notifier.info
        measured = _timed(lambda i: info({}, EVENT, {"i": i, "payload": payload}),
                          self.counter, self.sent, n)
        self.sent += n
        return measured


class OsloNotifications:
    """oslo.messaging's Notifier (driver messagingv2) and a threading
    notification listener on one topic of RabbitMQ at ``url`` (amqp://)."""

    def __init__(self, url: str) -> None:
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg

        self.url = url.replace("amqp://", "rabbit://", 1)
        conf = cfg.CONF  # (oslo.messaging registers some options on cfg.CONF only)
        if not getattr(OsloNotifications, "_parsed", False):
            try:
                conf([], project="bench")
            except cfg.Error:
                pass  # parsed already (by the rpc peer)
            OsloNotifications._parsed = True  # type: ignore[attr-defined]
        self.transport = oslo_messaging.get_notification_transport(conf, url=self.url)
        self.topic = f"bench-oslo-notify-{uuid.uuid4().hex[:8]}"
        self.counter = Counter()
        self.listener = oslo_messaging.get_notification_listener(
            self.transport, [oslo_messaging.Target(topic=self.topic)],
            [NotificationEndpoint(self.counter)], executor="threading")
        self.listener.start()
        self.notifier = oslo_messaging.Notifier(self.transport, publisher_id="bench.publisher",
                                                driver="messagingv2", topics=[self.topic])
        self.sent = 1
        self.notifier.info({}, EVENT, {"i": 0, "payload": ""})
        self.counter.wait_for(1, timeout=60)

    def run(self, n: int, size: int = 100) -> Measured:
        payload = "x" * size
        info = self.notifier.info
        measured = _timed(lambda i: info({}, EVENT, {"i": i, "payload": payload}),
                          self.counter, self.sent, n)
        self.sent += n
        return measured

    def close(self) -> None:
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()
        import kombu  # oslo.messaging leaves its notification queue behind

        with kombu.Connection(self.url.replace("rabbit://", "amqp://", 1)) as conn:
            conn.channel().queue_delete(f"{self.topic}.info")
