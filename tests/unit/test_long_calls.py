"""Heartbeats, streams, clients and versions on the memory driver: the cases
the driver conformance suite cannot bring about on a real backend (a server
that goes silent while its method runs, a generator that raises)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpccore
from rpccore import server as server_module
from rpccore.testing import memory_rpc


class Endpoint:
    rpc_version = "3.2"
    rpc_namespace = "storage"

    def __init__(self) -> None:
        self.release = threading.Event()

    def hold(self, ctx: dict[str, Any], seconds: float) -> str:
        self.release.wait(seconds)
        return "held"

    def broken(self, ctx: dict[str, Any]) -> Iterator[int]:
        yield 1
        raise ValueError("disk gone")


class Mute:
    """Stands in for the keepalive thread of a server that hangs or died."""

    def start(self, request: object, interval: float) -> None:
        pass


def test_a_silent_server_is_noticed_after_the_heartbeat_not_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "KEEPALIVES", Mute())
    endpoint = Endpoint()
    with memory_rpc() as rpc:
        rpc.serve("svc", [endpoint]).start()
        start = time.monotonic()
        with pytest.raises(rpccore.Timeout) as err:
            rpc.call({}, "svc", {"method": "hold", "args": {"seconds": 20},
                                 "namespace": "storage", "version": "3.0"},
                     timeout=20, heartbeat=0.5)
        took = time.monotonic() - start
        endpoint.release.set()
    assert 0.5 <= took < 3.0, took
    assert "went silent" in str(err.value)
    assert "heartbeat" in str(err.value)


def test_keepalives_are_counted_and_never_taken_for_the_reply() -> None:
    endpoint = Endpoint()
    with memory_rpc() as rpc:
        rpc.serve("svc", [endpoint]).start()
        assert rpc.call({}, "svc", {"method": "hold", "args": {"seconds": 1.0},
                                    "namespace": "storage", "version": "3.0"},
                        timeout=10, heartbeat=0.2) == "held"


def test_bad_heartbeats_and_versions_are_refused_before_sending() -> None:
    with memory_rpc() as rpc:
        with pytest.raises(rpccore.InvalidMessage):
            rpc.call({}, "svc", {"method": "hold", "args": {}}, heartbeat=0)
        for version in ("2", "two.one", "1.-1", 2.1, "1.2.3"):
            with pytest.raises(rpccore.InvalidMessage):
                rpc.cast({}, "svc", {"method": "hold", "args": {}, "version": version})
        with pytest.raises(rpccore.InvalidMessage):
            rpc.client("svc", version_cap="latest")


def test_an_error_in_a_streamed_generator_reaches_the_reader_after_its_items() -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        reader = rpc.stream({}, "svc", {"method": "broken", "args": {},
                                        "namespace": "storage", "version": "3.0"}, timeout=5)
        assert next(reader) == 1
        with pytest.raises(rpccore.RemoteError) as err:
            next(reader)
        assert err.value.exc_type == "ValueError"
        assert "disk gone" in err.value.value


def test_prepare_leaves_the_client_unchanged_and_is_safe_from_many_threads() -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        base = rpc.client("svc", namespace="storage", version_cap="3.2", timeout=5)
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                client = base.prepare(version=f"3.{k % 3}")
                for _ in range(20):
                    assert client.call({}, "hold", seconds=0) == "held"
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert base.can_send_version("3.2") and not base.can_send_version("3.3")
        with pytest.raises(rpccore.VersionCapError) as err:
            base.prepare(version="3.3").call({}, "hold", seconds=0)
        assert isinstance(err.value, rpccore.InvalidMessage)
        assert "3.3" in str(err.value) and "3.2" in str(err.value)
