"""Listener behaviour on the memory driver: signing, hostile input, dispatch
order, REQUEUE, batches, stopping, and what RPC.close() stops."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pytest

import rpccore
from rpccore import REQUEUE, envelope
from rpccore.notify.message import notification_envelope
from rpccore.testing import NotificationRecorder, memory_rpc, wait_until


def stats(rpc: rpccore.RPC) -> dict[str, int]:
    return rpc.stats()[rpc.default_cell]


def raw_notify(rpc: rpccore.RPC, topic: str, body: bytes) -> None:
    rpc.cell().driver().notify(topic, body)


def test_the_envelope_of_a_notification_round_trips_and_is_checked() -> None:
    env = notification_envelope("pub", "info", {"u": 1}, "event", {"p": [1]})
    assert env["kind"] == "notification" and env["ts"].endswith("+00:00")
    body = envelope.encode(env, max_size=10**6, key=b"k")
    assert envelope.decode(body, max_size=10**6, key=b"k") == env
    no_payload = notification_envelope("pub", "info", {}, "event", None)
    assert "payload" not in no_payload  # no null on the wire
    for field in ("ts", "pub", "event", "prio", "ctx"):
        broken = dict(env)
        del broken[field]
        with pytest.raises(rpccore.InvalidMessage, match=field):
            envelope.decode(json.dumps(broken).encode(), max_size=10**6)


def test_signed_cells_drop_unsigned_wrongly_signed_and_old_notifications() -> None:
    with memory_rpc(secret_key="s3cret") as rpc, memory_rpc(rpc.cell().url.virtual_host,
                                                             secret_key="wrong") as stranger:
        recorder = NotificationRecorder()
        rpc.listener(["n"], [recorder]).start()
        stranger.notifier("intruder", topics=["n"]).info({}, "forged", {})
        raw_notify(rpc, "n", envelope.encode(
            notification_envelope("intruder", "info", {}, "unsigned", {}), max_size=10**6))
        old = notification_envelope("pub", "info", {}, "replayed", {})
        old["ts"] = "2020-01-01T00:00:00.000000+00:00"
        raw_notify(rpc, "n", envelope.encode(old, max_size=10**6, key=b"s3cret"))
        rpc.notifier("pub", topics=["n"]).info({}, "genuine", {})
        assert [n.event_type for n in recorder.wait_for(1)] == ["genuine"]
        assert wait_until(lambda: stats(rpc)["dropped_unsigned"] == 2
                          and stats(rpc)["dropped_expired"] == 1), stats(rpc)
        assert stats(rpc)["notifications_received"] == 1


def test_garbage_never_kills_a_listener() -> None:
    with memory_rpc() as rpc:
        recorder = NotificationRecorder()
        rpc.listener(["n"], [recorder]).start()
        cast = envelope.encode({"v": 1, "id": "c", "kind": "cast", "method": "m", "args": {},
                                "ctx": {}}, max_size=10**6)
        for body in (b"", b"\x00\xff", b"[]", b'{"v":1}', b"{" * 50000, cast,
                     json.dumps({"v": 99, "id": "x", "kind": "notification"}).encode()):
            raw_notify(rpc, "n", body)
        unknown_priority = notification_envelope("pub", "__init__", {}, "e", {})
        raw_notify(rpc, "n", envelope.encode(unknown_priority, max_size=10**6))
        rpc.notifier("pub", topics=["n"]).info({}, "fine", {})
        assert [n.event_type for n in recorder.wait_for(1)] == ["fine"]
        assert wait_until(lambda: stats(rpc)["dropped_malformed"] == 7), stats(rpc)


def test_a_notification_sent_to_an_rpc_server_is_dropped() -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [NotificationRecorder()]).start()
        body = envelope.encode(notification_envelope("pub", "info", {}, "e", {}),
                               max_size=10**6)
        rpc.cell().driver().send(rpc.make_destination("svc"), body)
        assert wait_until(lambda: stats(rpc)["dropped_malformed"] == 1)
        assert stats(rpc)["received"] == 0


class Ordered:
    def __init__(self, name: str, log: list[str], result: Any = None) -> None:
        self.name, self.log, self.result = name, log, result

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> Any:
        self.log.append(self.name)
        result = self.result
        self.result = None  # requeue the first time only
        return result


def test_every_endpoint_runs_in_order_and_requeue_stops_the_rest() -> None:
    with memory_rpc(server_workers=1) as rpc:
        log: list[str] = []
        endpoints = [Ordered("first", log), Ordered("second", log, REQUEUE),
                     Ordered("third", log)]
        rpc.listener(["n"], endpoints).start()
        rpc.notifier("pub", topics=["n"]).info({}, "e", {})
        assert wait_until(lambda: len(log) == 5)
        time.sleep(0.1)
        assert log == ["first", "second", "first", "second", "third"]
        assert stats(rpc)["notifications_requeued"] == 1


class BatchRequeue:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def info(self, batch: list[dict[str, Any]]) -> Any:
        self.batches.append([item["payload"] for item in batch])
        return REQUEUE if len(self.batches) == 1 else None

    def warn(self, batch: list[dict[str, Any]]) -> None:
        self.batches.append([-item["payload"] for item in batch])


def test_batches_group_priorities_and_requeue_what_the_method_had() -> None:
    with memory_rpc(server_workers=1) as rpc:
        endpoint = BatchRequeue()
        rpc.listener(["n"], [endpoint], batch_size=4, batch_timeout=0.3).start()
        notifier = rpc.notifier("pub", topics=["n"])
        notifier.info({}, "e", 1)
        notifier.warn({}, "e", 2)
        notifier.info({}, "e", 3)
        notifier.warn({}, "e", 4)
        assert wait_until(lambda: len(endpoint.batches) == 3)
        # one batch of four: infos [1, 3] (requeued), warns [-2, -4]; then the
        # requeued two come back, in a partial batch after the timeout
        assert endpoint.batches[:2] == [[1, 3], [-2, -4]]
        assert sorted(endpoint.batches[2]) == [1, 3]
        assert stats(rpc)["notifications_requeued"] == 2


def test_stop_hands_on_a_partial_batch_and_wait_returns() -> None:
    with memory_rpc() as rpc:
        batches: list[int] = []

        class Batches:
            def info(self, batch: list[dict[str, Any]]) -> None:
                batches.append(len(batch))

        listener = rpc.listener(["n"], [Batches()], batch_size=10).start()  # no timeout
        for _ in range(3):
            rpc.notifier("pub", topics=["n"]).info({}, "e", {})
        assert wait_until(lambda: stats(rpc)["notifications_received"] == 3)
        time.sleep(0.1)
        assert batches == []
        listener.stop()
        assert listener.wait(5)
        assert batches == [3]


def test_stop_lets_taken_notifications_finish_and_later_ones_wait_for_the_pool() -> None:
    with memory_rpc() as rpc:
        release = threading.Event()
        done: list[str] = []

        class Slow:
            def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str,
                     payload: Any, metadata: dict[str, str]) -> None:
                release.wait(5)
                done.append(event_type)

        listener = rpc.listener(["n"], [Slow()], pool="p").start()
        notifier = rpc.notifier("pub", topics=["n"])
        notifier.info({}, "taken", {})
        assert wait_until(lambda: stats(rpc)["notifications_received"] == 1)
        stopper = threading.Thread(target=listener.stop)
        stopper.start()
        stopper.join(5)
        notifier.info({}, "after stop", {})
        assert not listener.wait(0.1)
        release.set()
        assert listener.wait(5)
        assert done == ["taken"]
        later = NotificationRecorder()
        rpc.listener(["n"], [later], pool="p").start()
        assert [n.event_type for n in later.wait_for(1)] == ["after stop"]


def test_closing_the_rpc_stops_its_listeners() -> None:
    rpc = memory_rpc()
    listener = rpc.listener(["n"], [NotificationRecorder()]).start()
    assert listener.running
    rpc.close()
    assert not listener.running
    assert listener.wait(5)


def test_removing_a_cell_stops_its_listeners() -> None:
    rpc = memory_rpc()
    rpc.add_cell("events", "memory:///remove-cell-events")
    listener = rpc.listener(["n"], [NotificationRecorder()], cell="events").start()
    other = rpc.listener(["n"], [NotificationRecorder()]).start()
    rpc.remove_cell("events")
    assert not listener.running and listener.wait(5)
    assert other.running
    rpc.close()


def test_a_lost_requeue_is_counted_and_logged(monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    from rpccore.drivers import memory_notify

    # what a driver whose backend cannot requeue does: Incoming's default
    monkeypatch.setattr(memory_notify._Notification, "requeue", rpccore.Incoming.requeue)
    with memory_rpc() as rpc, caplog.at_level(logging.WARNING):
        log: list[str] = []
        rpc.listener(["n"], [Ordered("only", log, REQUEUE)]).start()
        rpc.notifier("pub", topics=["n"]).info({}, "e", {})
        assert wait_until(lambda: stats(rpc)["notifications_not_requeued"] == 1)
        time.sleep(0.1)
        assert log == ["only"]
        assert stats(rpc)["notifications_requeued"] == 0
    assert any("cannot requeue" in r.getMessage() for r in caplog.records)
