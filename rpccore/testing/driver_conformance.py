"""Behaviours every driver must show, written once (pytest).

A driver's test module subclasses :class:`DriverConformance` and implements
:meth:`~DriverConformance.make_rpc`::

    class TestRabbitConformance(DriverConformance):
        def make_rpc(self, host=None, **options):
            return rpccore.testing.single_cell_rpc(
                "rabbit://guest:guest@127.0.0.1:5672/", **options)

Every test uses fresh topics, so suites can share a broker.

Notifications have suites of their own, mixed in with one line once a
driver implements ``notify`` and ``listen`` (see
:mod:`rpccore.testing.notification_conformance`, also importable from here)::

    class TestRabbitConformance(BrokerDriverConformance, BrokerNotificationConformance):
    class TestZmqConformance(DriverConformance, NotificationConformance):  # stores none
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from rpccore import envelope
from rpccore.errors import (
    InvalidDestination,
    InvalidMessage,
    RemoteError,
    Timeout,
    TransportError,
    Undeliverable,
)
from rpccore.rpc import RPC
from rpccore.server import Server
from rpccore.testing import wait_until
from rpccore.testing.aio_conformance import AioConformance
from rpccore.testing.long_calls_conformance import LongCallConformance
from rpccore.testing.notification_conformance import (  # noqa: F401 (for driver suites)
    BrokerNotificationConformance,
    NotificationConformance,
)
from rpccore.testing.tracing_conformance import TracingConformance


class Recorder:
    """An endpoint that answers and remembers what it was sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, Any]] = []
        self._cond = threading.Condition()

    def _note(self, method: str, value: Any) -> None:
        with self._cond:
            self.seen.append((method, value))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while len(self.seen) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def echo(self, ctx: dict[str, Any], value: Any) -> dict[str, Any]:
        self._note("echo", value)
        return {"value": value, "server": self.name, "ctx": ctx}

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def note(self, ctx: dict[str, Any], value: Any) -> None:
        self._note("note", value)

    def fail(self, ctx: dict[str, Any], text: str) -> None:
        raise ValueError(text)

    def slow(self, ctx: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)
        self._note("slow", seconds)
        return "done"


class DriverConformance(LongCallConformance, TracingConformance, AioConformance):
    """Subclass and implement :meth:`make_rpc`; pytest collects the tests."""

    #: Host names servers serve as. Broker drivers take any strings; a
    #: brokerless driver overrides them with addresses it can reach.
    hosts: tuple[str, ...] = ("host.a", "host b/#*", "hôst-ç.例")
    #: Whether a call to a destination nobody consumes raises Undeliverable.
    detects_undeliverable: bool = True
    #: Seconds a test waits for something that should happen at once.
    patience: float = 10.0

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        """An ``RPC`` whose default cell uses the driver under test.

        :param host: the host a server built from it will serve as (``None``:
            a client only).
        :param options: cell options to set (``secret_key``...).
        """
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _track_rpcs(self) -> Iterator[None]:
        self._rpcs: list[RPC] = []
        yield
        for rpc in reversed(self._rpcs):
            rpc.close()

    def rpc(self, host: str | None = None, **options: Any) -> RPC:
        rpc = self.make_rpc(host, **options)
        self._rpcs.append(rpc)
        return rpc

    @staticmethod
    def topic(label: str = "") -> str:
        # Periods on purpose: they are ordinary characters of a topic.
        return f"conformance.{label}.{os.urandom(4).hex()}"

    def serve(self, topic: str, host: str | None = None, name: str | None = None,
              workers: int | None = None, **options: Any) -> tuple[Recorder, Server]:
        rpc = self.rpc(host, **options)
        recorder = Recorder(name or f"{topic}@{host}")
        server = rpc.serve(rpc.make_destination(topic, host=host), [recorder],
                           workers=workers).start()
        return recorder, server

    # -- calls and casts -----------------------------------------------------

    def test_call_returns_result_and_context(self) -> None:
        topic = self.topic("call")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        reply = client.call({"user": "u1", "n": 1}, topic,
                            {"method": "echo", "args": {"value": [1, "two", {"3": None}]}},
                            timeout=self.patience)
        assert reply["value"] == [1, "two", {"3": None}]
        assert reply["ctx"] == {"user": "u1", "n": 1}
        assert client.call({}, topic, {"method": "add", "args": {"a": 2, "b": 3}},
                           timeout=self.patience) == 5

    def test_cast_reaches_server(self) -> None:
        topic = self.topic("cast")
        recorder, _ = self.serve(topic, self.hosts[0])
        client = self.rpc()
        for i in range(20):
            client.cast({}, topic, {"method": "note", "args": {"value": i}})
        assert recorder.wait_for(20, self.patience)
        assert sorted(v for _, v in recorder.seen) == list(range(20))

    def test_server_without_worker_threads(self) -> None:
        # workers=0: methods run on the driver's delivering thread
        topic = self.topic("inline")
        recorder, server = self.serve(topic, self.hosts[0], workers=0)
        client = self.rpc()
        for i in range(20):
            assert client.call({}, topic, {"method": "add", "args": {"a": i, "b": 1}},
                               timeout=self.patience) == i + 1
            client.cast({}, topic, {"method": "note", "args": {"value": i}})
        with pytest.raises(RemoteError) as info:
            client.call({}, topic, {"method": "fail", "args": {"text": "inline"}},
                        timeout=self.patience)
        assert "inline" in str(info.value)
        assert recorder.wait_for(20, self.patience)
        assert sorted(v for _, v in recorder.seen) == list(range(20))
        server.stop()
        assert server.wait(self.patience)

    def test_payloads_of_many_sizes_and_characters(self) -> None:
        topic = self.topic("payload")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        for value in ("", "é€😀\u0000\n", "x" * 65536, {"nested": [[], {}, 1.5, -2, True]}):
            reply = client.call({}, topic, {"method": "echo", "args": {"value": value}},
                                timeout=self.patience)
            assert reply["value"] == value

    # -- errors --------------------------------------------------------------

    def test_remote_error_carries_type_value_traceback(self) -> None:
        topic = self.topic("error")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        with pytest.raises(RemoteError) as info:
            client.call({}, topic, {"method": "fail", "args": {"text": "no such thing"}},
                        timeout=self.patience)
        assert info.value.exc_type == "ValueError"
        assert info.value.value == "no such thing"
        assert "ValueError" in info.value.traceback
        # the server survives and still answers
        assert client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}},
                           timeout=self.patience) == 2

    def test_unknown_method_and_wrong_arguments_are_remote_errors(self) -> None:
        topic = self.topic("unknown")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        with pytest.raises(RemoteError) as info:
            client.call({}, topic, {"method": "nope", "args": {}}, timeout=self.patience)
        assert info.value.exc_type == "rpccore.NoSuchMethod"
        with pytest.raises(RemoteError) as info:
            client.call({}, topic, {"method": "add", "args": {"a": 1}}, timeout=self.patience)
        assert info.value.exc_type == "rpccore.InvalidArguments"
        with pytest.raises(RemoteError):
            client.call({}, topic, {"method": "_track_rpcs", "args": {}}, timeout=self.patience)
        assert client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=self.patience) == 3

    def test_call_times_out(self) -> None:
        topic = self.topic("timeout")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        start = time.monotonic()
        with pytest.raises(Timeout):
            client.call({}, topic, {"method": "slow", "args": {"seconds": 3}}, timeout=0.5)
        elapsed = time.monotonic() - start
        assert 0.45 <= elapsed < 1.0, elapsed

    def test_nobody_consuming(self) -> None:
        client = self.rpc()
        topic = self.topic("nobody")
        start = time.monotonic()
        if self.detects_undeliverable:
            with pytest.raises(Undeliverable):
                client.call({}, topic, {"method": "echo", "args": {"value": 1}}, timeout=10)
            assert time.monotonic() - start < 5, "Undeliverable must come at once"
        else:
            with pytest.raises((Timeout, TransportError)):
                client.call({}, topic, {"method": "echo", "args": {"value": 1}}, timeout=1)
            assert time.monotonic() - start < 1.5

    def test_bad_input_is_refused_before_sending(self) -> None:
        client = self.rpc()
        topic = self.topic("bad")
        with pytest.raises(InvalidMessage):
            client.cast({}, topic, {"args": {}})
        with pytest.raises(InvalidMessage):
            client.cast({}, topic, {"method": "m", "args": [1]})
        with pytest.raises(InvalidMessage):
            client.cast({}, topic, {"method": "m", "args": {"s": {1, 2}}})
        with pytest.raises(InvalidMessage):
            client.cast({}, topic, {"method": "m", "args": {"x": "y" * (2 * 1024 * 1024)}})
        with pytest.raises(InvalidDestination):
            client.cast({}, "", {"method": "m", "args": {}})
        with pytest.raises(InvalidDestination):
            client.cast({}, client.make_destination("t", cell="no-such-cell"),
                        {"method": "m", "args": {}})

    # -- addressing ----------------------------------------------------------

    def test_work_is_shared_between_servers(self) -> None:
        topic = self.topic("shared")
        first, _ = self.serve(topic, self.hosts[0])
        second, _ = self.serve(topic, self.hosts[1])
        client = self.rpc()
        servers = [client.call({}, topic, {"method": "echo", "args": {"value": i}},
                               timeout=self.patience)["server"] for i in range(40)]
        assert set(servers) == {first.name, second.name}
        # each call ran exactly once in all
        assert len(first.seen) + len(second.seen) == 40

    def test_host_directed_delivery(self) -> None:
        topic = self.topic("direct")
        self.serve(topic, self.hosts[0])
        target, _ = self.serve(topic, self.hosts[1])
        client = self.rpc()
        dest = client.make_destination(topic, host=self.hosts[1])
        for i in range(10):
            reply = client.call({}, dest, {"method": "echo", "args": {"value": i}},
                                timeout=self.patience)
            assert reply["server"] == target.name
        for i in range(5):
            client.cast({}, dest, {"method": "note", "args": {"value": i}})
        assert target.wait_for(15, self.patience)

    def test_fanout_reaches_every_server(self) -> None:
        topic = self.topic("fanout")
        recorders = [self.serve(topic, host)[0] for host in self.hosts[:3]]
        client = self.rpc()
        client.cast({}, client.make_destination(topic, fanout=True),
                    {"method": "note", "args": {"value": "all"}})
        for recorder in recorders:
            assert recorder.wait_for(1, self.patience)
        time.sleep(0.2)
        assert all(recorder.seen == [("note", "all")] for recorder in recorders)
        with pytest.raises(InvalidDestination):
            client.call({}, client.make_destination(topic, fanout=True),
                        {"method": "echo", "args": {"value": 1}})

    def test_topics_with_any_characters_never_collide(self) -> None:
        base = self.topic("chars")
        suffixes = ["", ".x", ".*", ".#", "/x", " x", "%2Fx", "ä", ".x.y", "..x", "_x", "-x",
                    "x", ".X", "\\x", ":x", "'x\""]
        topics = [base + s for s in suffixes]
        for topic in topics:
            self.serve(topic, self.hosts[0], name=topic)
        client = self.rpc()
        for topic in topics:
            reply = client.call({}, topic, {"method": "echo", "args": {"value": 0}},
                                timeout=self.patience)
            assert reply["server"] == topic
            direct = client.make_destination(topic, host=self.hosts[0])
            reply = client.call({}, direct, {"method": "echo", "args": {"value": 0}},
                                timeout=self.patience)
            assert reply["server"] == topic

    # -- concurrency and lifecycle -------------------------------------------

    def test_concurrent_callers(self) -> None:
        topic = self.topic("concurrent")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                for i in range(25):
                    assert client.call({}, topic, {"method": "add", "args": {"a": k, "b": i}},
                                       timeout=self.patience) == k + i
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors[:3]

    def test_stop_lets_requests_in_flight_finish(self) -> None:
        topic = self.topic("stop")
        recorder, server = self.serve(topic, self.hosts[0])
        client = self.rpc()
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(r=client.call(
            {}, topic, {"method": "slow", "args": {"seconds": 0.5}}, timeout=self.patience)))
        thread.start()
        assert wait_until(lambda: server.cell.stats.get("received") == 1, self.patience)
        server.stop()
        thread.join(self.patience)
        assert result.get("r") == "done"
        assert server.wait(self.patience)
        # a new server on the same destination takes over
        self.serve(topic, self.hosts[0])
        assert client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}},
                           timeout=self.patience) == 2

    def test_slow_server_honours_deadlines_without_pile_up(self) -> None:
        topic = self.topic("slow")
        recorder, server = self.serve(topic, self.hosts[0], server_workers=1,
                                      server_queue_size=2)
        client = self.rpc()
        outcomes: list[tuple[str, float]] = []
        lock = threading.Lock()

        def slow_call() -> None:
            start = time.monotonic()
            try:
                client.call({}, topic, {"method": "slow", "args": {"seconds": 0.4}},
                            timeout=1.0)
                result = "ok"
            except Timeout:
                result = "timeout"
            with lock:
                outcomes.append((result, time.monotonic() - start))

        callers = [threading.Thread(target=slow_call) for _ in range(10)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(self.patience)
        assert len(outcomes) == 10
        assert all(elapsed < 1.5 for _, elapsed in outcomes), outcomes
        assert 1 <= sum(r == "ok" for r, _ in outcomes) <= 4, outcomes
        # Requests whose callers gave up are skipped (by the server, or expired
        # by the backend), not run late: with one worker, running the seven or
        # so stale ones (0.4 s each) would hold a fresh call up for seconds.
        start = time.monotonic()
        assert client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 1}},
                           timeout=self.patience) == 2
        assert time.monotonic() - start < 1.0
        assert len(recorder.seen) <= 5, recorder.seen

    # -- signing -------------------------------------------------------------

    def test_signed_cell_refuses_unsigned_and_wrongly_signed_messages(self) -> None:
        topic = self.topic("signed")
        _, server = self.serve(topic, self.hosts[0], secret_key="s3cret")
        good = self.rpc(secret_key="s3cret")
        assert good.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                         timeout=self.patience) == 3
        for stranger in (self.rpc(), self.rpc(secret_key="wrong")):
            with pytest.raises(Timeout):
                stranger.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                              timeout=1)
        assert server.cell.stats.get("dropped_unsigned") == 2
        assert server.cell.stats.get("received") == 1


    def test_signed_envelopes_cannot_be_replayed(self) -> None:
        topic = self.topic("replay")
        recorder, server = self.serve(topic, self.hosts[0], secret_key="s3cret")
        client = self.rpc(secret_key="s3cret")
        driver = client.cell().driver()
        captured: list[tuple[Any, bytes]] = []
        send = driver.send

        def capture(dest: Any, body: bytes, **kwargs: Any) -> None:
            captured.append((dest, body))
            send(dest, body, **kwargs)

        driver.send = capture  # type: ignore[method-assign]
        client.cast({}, topic, {"method": "note", "args": {"value": "once"}})
        driver.send = send  # type: ignore[method-assign]
        assert recorder.wait_for(1, self.patience)
        dest, body = captured[0]
        driver.send(dest, body)  # an eavesdropper replays it, twice
        driver.send(dest, body)
        stale = envelope.encode(
            {"v": envelope.VERSION, "id": "stale-" + os.urandom(4).hex(), "kind": "cast",
             "method": "note", "args": {"value": "stale"}, "ctx": {},
             "deadline": time.time() - 1}, max_size=1 << 20, key=b"s3cret")
        driver.send(dest, stale)  # validly signed, but past its deadline
        stats = server.cell.stats
        assert wait_until(lambda: stats.get("dropped_replayed") == 2
                           and stats.get("dropped_expired") == 1, self.patience), \
            stats.snapshot()
        assert recorder.seen == [("note", "once")]

class BrokerDriverConformance(DriverConformance):
    """For drivers whose hosts are names, not addresses (brokered drivers):
    also checks that no (topic, host) pair reaches another pair's consumers,
    however the two split on periods or wildcards."""

    def test_topic_and_host_pairs_never_collide(self) -> None:
        base = self.topic("pairs")
        pairs = [(base + ".a", "b.c"), (base, "a.b.c"), (base + ".a.b", "c"),
                 (base + "#", "x"), (base, "#.x"), (base + "*", "y"), (base, "*.y"),
                 (base + "/", "z"), (base, "/z")]
        for topic, host in pairs:
            self.serve(topic, host, name=f"{topic}|{host}")
        client = self.rpc()
        for topic, host in pairs:
            reply = client.call({}, client.make_destination(topic, host=host),
                                {"method": "echo", "args": {"value": 0}}, timeout=self.patience)
            assert reply["server"] == f"{topic}|{host}"
