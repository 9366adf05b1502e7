from __future__ import annotations

from typing import Any

from rpccore.dispatcher import Dispatcher


class Endpoint:
    def add(self, ctx: dict[str, Any], a: int, b: int = 0) -> int:
        return a + b

    def broken(self, ctx: dict[str, Any]) -> None:
        raise TypeError("inside the method")

    def _private(self, ctx: dict[str, Any]) -> str:
        return "secret"


class Second:
    def add(self, ctx: dict[str, Any], a: int, b: int = 0) -> str:
        return "never: the first endpoint wins"

    def only_here(self, ctx: dict[str, Any]) -> str:
        return ctx["who"]


def test_dispatch_order_and_results() -> None:
    d = Dispatcher([Endpoint(), Second()])
    assert d.dispatch({}, "add", {"a": 1, "b": 2}) == (3, None)
    assert d.dispatch({"who": "me"}, "only_here", {}) == ("me", None)


def test_failures() -> None:
    d = Dispatcher([Endpoint()])
    _, fail = d.dispatch({}, "missing", {})
    assert fail is not None and fail["type"] == "rpccore.NoSuchMethod"
    _, fail = d.dispatch({}, "_private", {})
    assert fail is not None and fail["type"] == "rpccore.NoSuchMethod"
    _, fail = d.dispatch({}, "add", {"c": 1})
    assert fail is not None and fail["type"] == "rpccore.InvalidArguments"
    _, fail = d.dispatch({}, "broken", {})
    assert fail is not None and fail["type"] == "TypeError"
    assert "inside the method" in fail["traceback"]
