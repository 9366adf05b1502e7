"""Server behaviour on the memory driver: hostile input, deadlines, replays, limits."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

import rpccore
from rpccore import envelope
from rpccore.testing import memory_rpc, wait_until


class Endpoint:
    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def echo(self, ctx: dict[str, Any], value: Any) -> Any:
        self.calls += 1
        return value

    def block(self, ctx: dict[str, Any]) -> str:
        self.release.wait(10)
        return "released"

    def unsendable(self, ctx: dict[str, Any]) -> Any:
        return {1, 2}


def raw_send(rpc: rpccore.RPC, topic: str, body: bytes, reply: Any = None) -> None:
    rpc.cell().driver().send(rpc.make_destination(topic), body, on_reply=reply)


def test_garbage_never_kills_a_server() -> None:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        server = rpc.serve("svc", [endpoint]).start()
        for body in (b"", b"\x00\xff", b"[]", b'{"v":1}', b"{" * 50000,
                     json.dumps({"v": 99, "id": "x", "kind": "call"}).encode(),
                     json.dumps({"v": 1, "id": "r", "kind": "reply", "re": "z"}).encode()):
            raw_send(rpc, "svc", body)
        assert rpc.call({}, "svc", {"method": "echo", "args": {"value": 1}}, timeout=5) == 1
        # several workers: the garbage may still be in hand when the call returns
        assert wait_until(lambda: server.cell.stats.get("dropped_malformed") == 7)


def test_expired_requests_are_skipped() -> None:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        rpc.serve("svc", [endpoint]).start()
        env = {"v": 1, "id": "old", "kind": "cast", "method": "echo", "args": {"value": 1},
               "ctx": {}, "deadline": time.time() - 1}
        raw_send(rpc, "svc", envelope.encode(env, max_size=10**6))
        rpc.call({}, "svc", {"method": "echo", "args": {"value": 2}}, timeout=5)
        assert wait_until(lambda: rpc.stats()["default"]["dropped_expired"] == 1)
        assert endpoint.calls == 1


def test_signed_replays_are_refused() -> None:
    with memory_rpc(secret_key="k") as rpc:
        endpoint = Endpoint()
        rpc.serve("svc", [endpoint]).start()
        captured: list[bytes] = []
        driver = rpc.cell().driver()
        original = driver.send

        def spy(dest: Any, body: bytes, **kw: Any) -> None:
            captured.append(body)
            original(dest, body, **kw)

        driver.send = spy  # type: ignore[method-assign]
        rpc.cast({}, "svc", {"method": "echo", "args": {"value": 1}})
        driver.send = original  # type: ignore[method-assign]
        raw_send(rpc, "svc", captured[0])
        rpc.call({}, "svc", {"method": "echo", "args": {"value": 2}}, timeout=5)
        assert wait_until(lambda: rpc.stats()["default"]["dropped_replayed"] == 1)
        assert endpoint.calls == 2


def test_unsendable_result_becomes_remote_error() -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()]).start()
        with pytest.raises(rpccore.RemoteError) as info:
            rpc.call({}, "svc", {"method": "unsendable", "args": {}}, timeout=5)
        assert info.value.exc_type == "rpccore.InvalidResult"


def test_late_replies_and_no_leaked_futures() -> None:
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        rpc.serve("svc", [endpoint]).start()
        with pytest.raises(rpccore.Timeout):
            rpc.call({}, "svc", {"method": "block", "args": {}}, timeout=0.2)
        assert len(rpc.cell().pending_calls) == 0
        endpoint.release.set()
        assert wait_until(lambda: rpc.stats()["default"]["late_replies"] == 1)
        assert rpc.call({}, "svc", {"method": "echo", "args": {"value": 1}}, timeout=5) == 1


def test_server_queue_is_bounded() -> None:
    with memory_rpc(server_workers=1, server_queue_size=2) as rpc:
        endpoint = Endpoint()
        server = rpc.serve("svc", [endpoint]).start()
        for _ in range(3):  # one running, two queued
            rpc.cast({}, "svc", {"method": "block", "args": {}})
        blocked = threading.Thread(
            target=rpc.cast, args=({}, "svc", {"method": "echo", "args": {"value": 0}}))
        blocked.start()
        blocked.join(0.3)
        assert blocked.is_alive(), "a full server must push back, not grow its queue"
        endpoint.release.set()
        blocked.join(5)
        assert not blocked.is_alive()
        server.stop()
        assert server.wait(5)


def test_casts_nobody_consumes_are_counted() -> None:
    with memory_rpc() as rpc:
        rpc.cast({}, "nobody", {"method": "m", "args": {}})
        assert rpc.stats()["default"]["returned"] == 1
        with pytest.raises(rpccore.Undeliverable):
            rpc.cast({}, "nobody", {"method": "m", "args": {}}, confirm=True)


def test_close_fails_waiting_calls_at_once() -> None:
    server_rpc = memory_rpc("close-test")
    client = memory_rpc("close-test")
    endpoint = Endpoint()
    server_rpc.serve("svc", [endpoint]).start()
    errors: list[BaseException] = []

    def waiting_call() -> None:
        try:
            client.call({}, "svc", {"method": "block", "args": {}}, timeout=30)
        except rpccore.RPCError as exc:
            errors.append(exc)

    caller = threading.Thread(target=waiting_call)
    caller.start()
    assert wait_until(lambda: len(client.cell().pending_calls) == 1)
    start = time.monotonic()
    client.close()
    caller.join(5)
    assert time.monotonic() - start < 1
    assert len(errors) == 1 and isinstance(errors[0], rpccore.TransportError)
    endpoint.release.set()
    server_rpc.close()


def test_workers_zero_runs_methods_on_the_delivering_thread() -> None:
    seen: list[str] = []

    class Where:
        def where(self, ctx: dict[str, Any]) -> str:
            seen.append(threading.current_thread().name)
            return "ok"

    with memory_rpc() as rpc:
        server = rpc.serve("inline", [Where()], workers=0).start()
        assert rpc.call({}, "inline", {"method": "where", "args": {}}, timeout=5) == "ok"
        # each memory subscription delivers on a thread of its own
        assert seen == ["rpccore-memory-inline"]
        server.stop()
        assert server.wait(1)
        with pytest.raises(ValueError, match="0 or more"):
            rpc.serve("inline", [Where()], workers=-1)


def test_envelopes_carry_no_null_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # null sends the JSON codec down its slow path (rpccore.jsoncodec): no
    # host, no cell, no deadline and a None result are left out instead
    bodies: list[bytes] = []
    encode = envelope.encode

    def recording(env: dict[str, Any], **kwargs: Any) -> bytes:
        body = encode(env, **kwargs)
        bodies.append(body)
        return body

    monkeypatch.setattr(envelope, "encode", recording)
    with memory_rpc() as rpc:
        endpoint = Endpoint()
        rpc.serve("svc", [endpoint]).start()
        assert rpc.call({}, "svc", {"method": "echo", "args": {"value": "x"}}, timeout=5) == "x"
        rpc.cast({}, "svc", {"method": "echo", "args": {"value": "y"}})
        assert rpc.call({}, rpc.make_destination("svc"), {"method": "echo",
                                                          "args": {"value": None}}) is None
        assert wait_until(lambda: endpoint.calls == 3)
    assert len(bodies) == 5  # two calls, their replies, one cast
    assert [b for b in bodies if b"null" in b] == [bodies[3]]  # the request with None in args
    assert b'"deadline"' not in bodies[2]  # the cast


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_a_ping_is_answered_on_the_delivering_thread_whatever_the_body_type(wrap: Any) -> None:
    # The Incoming contract says bytes; a driver that hands over a bytearray
    # or a memoryview (which envelope.decode takes too) still has its pings
    # answered at once, not behind busy workers.
    replies: list[bytes] = []

    class Delivered(rpccore.Incoming):
        def __init__(self, body: Any) -> None:
            self.body = body

        def reply(self, body: bytes) -> None:
            replies.append(body)

    with memory_rpc() as rpc:
        endpoint = Endpoint()
        server = rpc.serve("svc", [endpoint], workers=1).start()
        rpc.cast({}, "svc", {"method": "block", "args": {}})  # holds the only worker
        env = {"v": 1, "id": "p1", "kind": "call", "dest": {"topic": "svc", "fanout": False},
               "method": "ping", "args": {}, "ctx": {}, "sys": "ping",
               "deadline": time.time() + 10}
        body = wrap(envelope.encode(env, max_size=10**6))
        try:
            server._queue_or_answer(Delivered(body))
            assert len(replies) == 1  # answered before this returned
            assert json.loads(replies[0])["result"]["workers"] == 1
        finally:
            endpoint.release.set()


def test_pending_calls_forget_a_waiter_whether_or_not_its_reply_came() -> None:
    with memory_rpc() as rpc:
        cell = rpc.cell()
        pending = cell.pending_calls
        answered, abandoned = pending.add("answered"), pending.add("abandoned")
        reply = {"v": 1, "id": "answered.r", "kind": "reply", "re": "answered", "result": 7}
        assert pending.on_reply(envelope.encode(reply, max_size=10**6)) is False
        assert answered.reply == dict(reply) and len(pending) == 1
        pending.discard("answered")  # taken with its final reply already: nothing to do
        pending.discard("abandoned")  # still waiting: removed
        assert len(pending) == 0 and not abandoned.done
        late = dict(reply, re="abandoned")
        assert pending.on_reply(envelope.encode(late, max_size=10**6)) is False
        assert cell.stats.get("late_replies") == 1
