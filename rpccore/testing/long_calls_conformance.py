"""Behaviours of docs/upgrades-and-long-calls.rst every driver must show (pytest): versioned
dispatch, :class:`rpccore.Client`, ping, heartbeats, streams and gathers.

Mixed into :class:`rpccore.testing.driver_conformance.DriverConformance`,
whose helpers (``rpc``, ``serve``, ``topic``, ``hosts``, ``patience``) it uses.

A driver whose servers can run in other processes implements one hook,
:meth:`LongCallConformance.start_server_peer` (a server the kit kills
mid-call); by default the kit mutes a server in this process instead.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from rpccore.errors import RemoteError, RPCError, Timeout, VersionCapError
from rpccore.testing.server_peers import InProcessPeer, ServerPeer

if TYPE_CHECKING:
    from rpccore.rpc import RPC
    from rpccore.server import Server


class ComputeV1:
    rpc_version = "1.4"
    rpc_namespace = "compute"

    def which(self, ctx: dict[str, Any]) -> str:
        return "1.4"

    def only_in_v1(self, ctx: dict[str, Any]) -> str:
        return "v1"


class ComputeV2:
    rpc_version = "2.1"
    rpc_namespace = "compute"

    def which(self, ctx: dict[str, Any]) -> str:
        return "2.1"


class NoNamespace:
    def which(self, ctx: dict[str, Any]) -> str:
        return "none"

    def ping(self, ctx: dict[str, Any]) -> str:  # never reached by rpc.ping
        return "endpoint ping"


class Named:
    """Answers its host's name, or (``broken``) raises."""

    def __init__(self, host: str, broken: bool = False) -> None:
        self.host = host
        self.broken = broken

    def name(self, ctx: dict[str, Any]) -> str:
        if self.broken:
            raise ValueError(f"{self.host} is down for maintenance")
        return self.host


class Producer:
    """Generator methods, with what they produced so far."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = threading.Event()

    def count(self, ctx: dict[str, Any], n: int) -> Iterator[int]:
        for i in range(n):
            self.produced = i + 1
            yield i

    def forever(self, ctx: dict[str, Any]) -> Iterator[int]:
        try:
            i = 0
            while True:
                self.produced = i + 1
                yield i
                i += 1
        finally:
            self.closed.set()

    def slow(self, ctx: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)
        return "done"


class LongCallConformance:
    """Versions, clients, ping, heartbeats and streams on the driver under test."""

    hosts: tuple[str, ...]
    patience: float

    if TYPE_CHECKING:
        def rpc(self, host: str | None = None, **options: Any) -> RPC: ...

        @staticmethod
        def topic(label: str = "") -> str: ...

    def start_server_peer(self, topic: str, host: str) -> ServerPeer:
        """A server of ``topic`` as ``host`` serving a
        :class:`~rpccore.testing.server_peers.Napper`, that the kit kills in
        the middle of a call.

        Override it where servers can run in another process: start one
        there (the endpoint is :data:`rpccore.testing.server_peers.NAPPER`
        with ``announce=True``, cell options as :meth:`make_rpc` would set)
        and return a peer whose ``kill()`` is SIGKILL. The default serves in this process and mutes
        the server on ``kill()`` (for drivers that cannot cross processes).
        """
        return InProcessPeer(self.rpc(host), topic, host)

    def _serve(self, topic: str, host: str, endpoints: list[object],
               workers: int | None = None, **options: Any) -> Server:
        rpc = self.rpc(host, **options)
        return rpc.serve(rpc.make_destination(topic, host=host), endpoints,
                         workers=workers).start()

    # -- versions, Client, ping (docs/upgrades-and-long-calls.rst) -----------

    def test_dispatch_picks_a_compatible_version_in_the_namespace(self) -> None:
        topic = self.topic("versions")
        self._serve(topic, self.hosts[0], [ComputeV1(), ComputeV2(), NoNamespace()])
        client = self.rpc()

        def which(version: str | None, namespace: str | None, method: str = "which") -> Any:
            msg: dict[str, Any] = {"method": method, "args": {}}
            if version is not None:
                msg["version"] = version
            if namespace is not None:
                msg["namespace"] = namespace
            return client.call({}, topic, msg, timeout=self.patience)

        assert which("1.0", "compute") == "1.4"
        assert which("1.4", "compute") == "1.4"
        assert which("2.0", "compute") == "2.1"
        assert which(None, None) == "none"
        with pytest.raises(RemoteError) as err:
            which("2.2", "compute")
        assert err.value.exc_type == "rpccore.UnsupportedVersion"
        with pytest.raises(RemoteError) as err:
            which("1.5", "compute")
        assert err.value.exc_type == "rpccore.UnsupportedVersion"
        with pytest.raises(RemoteError) as err:
            which("1.0", "compute", "no_such_method")
        assert err.value.exc_type == "rpccore.NoSuchMethod"
        with pytest.raises(RemoteError) as err:
            which("1.0", None, "only_in_v1")  # exists, but in another namespace
        assert err.value.exc_type == "rpccore.NoSuchMethod"

    def test_client_prepares_versions_and_refuses_above_its_cap(self) -> None:
        topic = self.topic("client")
        self._serve(topic, self.hosts[0], [ComputeV1(), ComputeV2()])
        rpc = self.rpc()
        client = rpc.client(rpc.make_destination(topic), version_cap="1.9",
                            namespace="compute", timeout=self.patience)
        assert client.prepare(version="1.2").call({}, "which") == "1.4"
        assert client.can_send_version("1.9")
        assert not client.can_send_version("2.0")
        above = client.prepare(version="2.0")
        sent = rpc.stats()[rpc.default_cell]["sent"]
        with pytest.raises(VersionCapError):
            above.call({}, "which")
        with pytest.raises(VersionCapError):
            above.cast({}, "which")
        assert rpc.stats()[rpc.default_cell]["sent"] == sent  # refused before sending
        uncapped = client.prepare(version="2.0")
        assert uncapped is not client
        assert rpc.client(rpc.make_destination(topic), namespace="compute",
                          timeout=self.patience).prepare(version="2.0").call({}, "which") == "2.1"

    def test_ping_is_answered_by_rpccore_not_by_endpoints(self) -> None:
        topic = self.topic("ping")
        host = self.hosts[0]
        self._serve(topic, host, [ComputeV2(), NoNamespace()])
        rpc = self.rpc()
        before = time.monotonic()
        answer = rpc.ping(rpc.make_destination(topic, host=host), timeout=self.patience)
        assert answer["host"] == host
        assert answer["topic"] == topic
        assert answer["pid"] == os.getpid()
        assert answer["versions"]["compute"] == "2.1"
        assert 0 <= answer["uptime"] < time.monotonic() - before + self.patience
        # the endpoint's own "ping" method is still reachable as a method
        assert rpc.call({}, topic, {"method": "ping", "args": {}},
                        timeout=self.patience) == "endpoint ping"

    def test_fanout_ping_and_auto_version_cap_see_every_server(self) -> None:
        topic = self.topic("auto-cap")
        old, new = self.hosts[0], self.hosts[1]

        class Old(ComputeV2):
            rpc_version = "2.0"

        self._serve(topic, old, [Old()])
        self._serve(topic, new, [ComputeV2()])
        rpc = self.rpc()
        fanout = rpc.make_destination(topic, fanout=True)
        answers = rpc.ping(fanout, timeout=2.0)
        assert sorted(host for host, _ in answers) == sorted([old, new])
        assert sorted(a["versions"]["compute"] for _, a in answers) == ["2.0", "2.1"]
        client = rpc.client(rpc.make_destination(topic), version_cap="auto",
                            namespace="compute", timeout=self.patience)
        assert client.can_send_version("2.0")
        assert not client.can_send_version("2.1")

    def test_a_rolling_upgrade_raises_the_auto_cap_once_the_old_server_stops(
            self) -> None:
        topic = self.topic("rolling")
        old_host, new_host = self.hosts[0], self.hosts[1]

        class Old:
            rpc_version = "2.1"
            rpc_namespace = "compute"

            def reboot(self, ctx: dict[str, Any]) -> str:
                return "old"

        class New(Old):
            rpc_version = "2.3"

            def reboot(self, ctx: dict[str, Any]) -> str:
                return "new"

            def added_in_2_3(self, ctx: dict[str, Any]) -> str:
                return "2.3 only"

        old = self._serve(topic, old_host, [Old()])
        self._serve(topic, new_host, [New()])
        rpc = self.rpc(version_cap_cache_seconds=0.2, version_discovery_window=0.5)
        client = rpc.client(rpc.make_destination(topic), version_cap="auto",
                            namespace="compute", timeout=self.patience)
        assert client.can_send_version("2.1")
        assert not client.can_send_version("2.3")  # an old server still runs
        with pytest.raises(VersionCapError):
            client.prepare(version="2.3").call({}, "added_in_2_3")
        # a 2.1 call is answered by whichever server gets it, old or new
        assert client.prepare(version="2.1").call({}, "reboot") in ("old", "new")
        old.stop()
        assert old.wait(self.patience)
        deadline = time.monotonic() + self.patience
        while not client.can_send_version("2.3"):  # refreshed in the background
            assert time.monotonic() < deadline, "the cap never rose"
            time.sleep(0.1)
        assert client.prepare(version="2.3").call({}, "added_in_2_3") == "2.3 only"

    # -- heartbeats, streams, gathers (docs/upgrades-and-long-calls.rst) -----

    def test_heartbeats_keep_a_call_longer_than_the_heartbeat_alive(self) -> None:
        # "Long calls: heartbeats": a 4 s method, heartbeat 1 s, succeeds under a 10 s timeout
        topic = self.topic("heartbeat")
        self._serve(topic, self.hosts[0], [Producer()])
        client = self.rpc()
        start = time.monotonic()
        assert client.call({}, topic, {"method": "slow", "args": {"seconds": 4.0}},
                           timeout=10.0, heartbeat=1.0) == "done"
        assert time.monotonic() - start >= 4.0
        # keepalives are neither the reply nor anything the driver drops
        assert client.stats()[client.default_cell].get("dropped_malformed", 0) == 0

    def test_a_server_killed_mid_call_fails_the_caller_within_the_heartbeat(
            self) -> None:
        topic = self.topic("killed")
        peer = self.start_server_peer(topic, self.hosts[0])
        try:
            rpc = self.rpc()
            # through Client.prepare(heartbeat=) (rpc.call(heartbeat=) is above)
            napper = rpc.client(rpc.make_destination(topic), timeout=10.0).prepare(
                heartbeat=1.0)
            outcome: dict[str, Any] = {}

            def call() -> None:
                try:
                    outcome["result"] = napper.call({}, "nap", seconds=30.0)
                except RPCError as exc:
                    outcome["error"] = exc
                outcome["ended"] = time.monotonic()

            caller = threading.Thread(target=call, daemon=True)
            caller.start()
            assert peer.wait_napping(self.patience), outcome
            time.sleep(0.8)  # the server sends a keepalive every 0.5 s meanwhile
            assert caller.is_alive(), outcome
            killed = time.monotonic()
            peer.kill()
            caller.join(self.patience)
            assert not caller.is_alive(), "the caller waited on after the server died"
            error = outcome.get("error")
            assert isinstance(error, Timeout), outcome
            assert "went silent" in str(error)
            assert re.search(r"heard [1-9][0-9]* keepalives", str(error)), str(error)
            assert outcome["ended"] - killed < 2.5, outcome["ended"] - killed
        finally:
            peer.close()

    def test_ten_thousand_streamed_items_arrive_in_order(self) -> None:
        topic = self.topic("stream-10k")
        self._serve(topic, self.hosts[0], [Producer()])
        client = self.rpc()
        reader = client.stream({}, topic, {"method": "count", "args": {"n": 10_000}},
                               timeout=self.patience)
        assert list(reader) == list(range(10_000))
        # streams back to back: the credit of one is still on its way as the
        # next starts (zmq once let the later items overtake the first)
        for _ in range(3):
            assert list(client.stream({}, topic, {"method": "count", "args": {"n": 300}},
                                      timeout=self.patience)) == list(range(300))
        assert client.stats()[client.default_cell].get("dropped_malformed", 0) == 0
        # a generator method called plainly returns everything it yields
        assert client.call({}, topic, {"method": "count", "args": {"n": 5}},
                           timeout=self.patience) == [0, 1, 2, 3, 4]

    def test_a_reader_that_sleeps_keeps_the_server_at_most_a_window_ahead(self) -> None:
        topic = self.topic("stream-window")
        producer = Producer()
        self._serve(topic, self.hosts[0], [producer])
        window = 8
        client = self.rpc(stream_window=window)
        reader = client.stream({}, topic, {"method": "count", "args": {"n": 200}},
                               timeout=self.patience)
        read: list[int] = []
        for pause_after in (3, 20, 57):
            while len(read) < pause_after:
                read.append(next(reader))
            time.sleep(0.3)  # a server without flow control would run to the end
            ahead = producer.produced - len(read)
            assert 0 < ahead <= window, (len(read), producer.produced)
        assert read + list(reader) == list(range(200))

    def test_breaking_out_of_a_stream_stops_the_generator_on_the_server(self) -> None:
        topic = self.topic("stream-break")
        producer = Producer()
        self._serve(topic, self.hosts[0], [producer])
        client = self.rpc(stream_window=4)
        read = []
        for item in client.stream({}, topic, {"method": "forever", "args": {}},
                                  timeout=self.patience):
            read.append(item)
            if len(read) == 5:
                break
        # nothing refers to the reader any more: collecting it cancels the stream
        assert read == [0, 1, 2, 3, 4]
        assert producer.closed.wait(1.0), "the server's generator went on after 1 s"
        produced = producer.produced
        time.sleep(0.3)
        assert producer.produced == produced

    def test_closing_a_stream_stops_the_generator_on_the_server(self) -> None:
        topic = self.topic("stream-close")
        producer = Producer()
        self._serve(topic, self.hosts[0], [producer])
        client = self.rpc(stream_window=4)
        reader = client.stream({}, topic, {"method": "forever", "args": {}},
                               timeout=self.patience)
        assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
        reader.close()
        assert producer.closed.wait(self.patience), "the server's generator went on"
        produced = producer.produced
        time.sleep(0.3)
        assert producer.produced == produced

    def test_a_one_worker_server_streams_past_its_window_and_still_answers_pings(
            self) -> None:
        # The stream holds the only worker while it waits for credit: the
        # credit, and pings, must not queue behind requests for a worker.
        topic = self.topic("stream-one-worker")
        host = self.hosts[0]
        producer = Producer()
        self._serve(topic, host, [producer], workers=1)
        client = self.rpc(stream_window=4)
        reader = client.stream({}, topic, {"method": "count", "args": {"n": 50}},
                               timeout=self.patience)
        assert next(reader) == 0
        answer = client.ping(client.make_destination(topic, host=host), timeout=self.patience)
        assert answer["workers"] == 1
        assert [0] + list(reader) == list(range(50))

    def test_gather_collects_one_answer_per_server(self) -> None:
        topic = self.topic("gather")
        hosts = self.hosts[:3]
        for host in hosts:
            self._serve(topic, host, [Named(host, broken=host == hosts[2])])
        client = self.rpc()
        found = client.gather({}, client.make_destination(topic, fanout=True),
                              {"method": "name", "args": {}}, timeout=1.5)
        assert len(found) == 3, found
        answers = dict(found)
        assert answers[hosts[0]] == hosts[0] and answers[hosts[1]] == hosts[1]
        failed = answers[hosts[2]]  # a server's failure is its answer, not the gather's
        assert isinstance(failed, RemoteError) and failed.exc_type == "ValueError", failed
