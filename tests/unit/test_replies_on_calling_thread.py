"""Calls on a driver that replies on the calling thread
(Driver.replies_on_calling_thread): the memory driver made to claim it, with
a server that runs requests on the sending thread (workers=0), which is what
such a driver does."""

from __future__ import annotations

from typing import Any

import pytest

import rpccore
from rpccore import envelope
from rpccore.drivers import memory
from rpccore.testing import memory_rpc


class Endpoint:
    def echo(self, ctx: dict[str, Any], value: Any) -> Any:
        return value

    def fail(self, ctx: dict[str, Any]) -> None:
        raise ValueError("no")


@pytest.fixture
def inline(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Claims replies_on_calling_thread; records the handler each call gets."""
    handlers: list[object] = []
    send = memory.MemoryDriver.send

    def recording(self: memory.MemoryDriver, dest: Any, body: bytes, **kw: Any) -> None:
        handlers.append(kw.get("on_reply"))
        send(self, dest, body, **kw)

    monkeypatch.setattr(memory.MemoryDriver, "replies_on_calling_thread", True)
    monkeypatch.setattr(memory.MemoryDriver, "send", recording)
    return handlers


def test_calls_complete_without_the_cell_s_table(inline: list[object]) -> None:
    with memory_rpc() as rpc:
        rpc.serve("svc", [Endpoint()], workers=0).start()
        pending = rpc.cell().pending_calls
        adds: list[str] = []
        pending.add = lambda msg_id: adds.append(msg_id)  # type: ignore[method-assign]
        assert rpc.call({}, "svc", {"method": "echo", "args": {"value": [1, "x"]}}) == [1, "x"]
        assert rpc.call({}, "svc", {"method": "echo", "args": {"value": None}}) is None
        with pytest.raises(rpccore.RemoteError, match="no"):
            rpc.call({}, "svc", {"method": "fail", "args": {}})
        assert adds == []
        # a handler of its own per call, not the cell's
        assert len(inline) == 3 and len({id(h) for h in inline}) == 3
        assert all(h != pending.on_reply for h in inline)
        assert rpc.stats()[rpc.default_cell]["sent"] == 3


def test_no_reply_by_the_time_send_returns_is_a_timeout(inline: list[object]) -> None:
    with memory_rpc() as rpc:
        # workers: the reply comes from another thread, after send returned
        rpc.serve("svc", [Endpoint()], workers=2).start()
        with pytest.raises(rpccore.Timeout):
            rpc.call({}, "svc", {"method": "echo", "args": {"value": 1}}, timeout=0.5)
        assert rpc.stats()[rpc.default_cell]["timed_out"] == 1


def test_a_reply_to_another_call_is_counted_late_and_not_taken(
        inline: list[object], monkeypatch: pytest.MonkeyPatch) -> None:
    with memory_rpc() as rpc:
        cell = rpc.cell()

        def answer_wrongly(self: Any, dest: Any, body: bytes, **kw: Any) -> None:
            reply = {"v": 1, "id": "x.r", "kind": "reply", "re": "someone-else", "result": 5}
            kw["on_reply"](envelope.encode(reply, max_size=1 << 20))
            kw["on_reply"](b"garbage")

        monkeypatch.setattr(memory.MemoryDriver, "send", answer_wrongly)
        with pytest.raises(rpccore.Timeout):
            rpc.call({}, "svc", {"method": "echo", "args": {"value": 1}}, timeout=0.5)
        assert cell.stats.get("late_replies") == 1
        assert cell.stats.get("dropped_malformed") == 1
