"""Interceptors (rpccore.interceptors) on the memory driver: order, state,
context and headers, refusals on either side, every kind of request."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from oslo_config import cfg

import rpccore
from rpccore.errors import RemoteError, Timeout, Undeliverable
from rpccore.interceptors import (
    IncomingRequest,
    Interceptor,
    InterceptorChain,
    OutgoingRequest,
    outcome,
)
from rpccore.opts import register_core_opts
from rpccore.testing import single_cell_rpc, wait_until


class Journal(Interceptor):
    """Writes down every hook it sees, tagged with its name."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        self.name = name
        self.log = log
        self.lock = threading.Lock()

    def _note(self, *entry: Any) -> None:
        with self.lock:
            self.log.append((self.name, *entry))

    def before_send(self, request: OutgoingRequest) -> Any:
        self._note("before_send", request.kind, request.method)
        return f"{self.name}-state"

    def after_send(self, request: OutgoingRequest, state: Any,
                   error: BaseException | None) -> None:
        self._note("after_send", request.kind, state, outcome(error))

    def before_dispatch(self, request: IncomingRequest) -> Any:
        self._note("before_dispatch", request.kind, request.method)
        return f"{self.name}-server"

    def after_dispatch(self, request: IncomingRequest, state: Any,
                       error: RemoteError | None) -> None:
        self._note("after_dispatch", request.kind, state,
                   None if error is None else error.exc_type)


class Enrich(Interceptor):
    """Adds a header on the way out and moves it into the context on the way in."""

    def before_send(self, request: OutgoingRequest) -> None:
        request.headers["token"] = "t0ken"
        request.ctx["sent_by"] = "enrich"

    def before_dispatch(self, request: IncomingRequest) -> None:
        if request.headers.get("token") != "t0ken":
            raise PermissionError(f"bad token {request.headers.get('token')!r}")
        request.ctx["user"] = "alice"


class Endpoint:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def whoami(self, ctx: dict[str, Any]) -> dict[str, Any]:
        return ctx

    def fail(self, ctx: dict[str, Any]) -> None:
        raise ValueError("no")

    def note(self, ctx: dict[str, Any], value: Any) -> None:
        self.seen.append(value)

    def slow(self, ctx: dict[str, Any]) -> None:
        threading.Event().wait(1.0)

    def count(self, ctx: dict[str, Any], n: int) -> Any:
        yield from range(n)


def memory_rpc(namespace: str, interceptors: list[Interceptor] | None = None,
               telemetry: bool = False) -> rpccore.RPC:
    conf = cfg.ConfigOpts()
    register_core_opts(conf)
    conf.set_override("opentelemetry", telemetry, group="rpccore")
    return single_cell_rpc(f"memory:///{namespace}", conf=conf, interceptors=interceptors)


@pytest.fixture()
def namespace() -> str:
    return "icpt-" + os.urandom(4).hex()


def test_hooks_run_in_order_with_their_state(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    server_rpc = memory_rpc(namespace, [Journal("A", log), Journal("B", log)])
    client = memory_rpc(namespace, [Journal("a", log), Journal("b", log)])
    with server_rpc, client:
        server_rpc.serve("svc", [Endpoint()]).start()
        assert client.call({}, "svc", {"method": "whoami", "args": {}}) == {}
        assert wait_until(lambda: len(log) == 8)
    # the server's after hooks run once the reply is out: their order
    # against the caller's after hooks is not fixed
    assert [e for e in log if e[0] in "ab"] == [
        ("a", "before_send", "call", "whoami"), ("b", "before_send", "call", "whoami"),
        ("b", "after_send", "call", "b-state", "ok"), ("a", "after_send", "call", "a-state", "ok"),
    ]
    assert log.index(("A", "before_dispatch", "call", "whoami")) > 1
    assert [e for e in log if e[0] in "AB"] == [
        ("A", "before_dispatch", "call", "whoami"), ("B", "before_dispatch", "call", "whoami"),
        ("B", "after_dispatch", "call", "B-server", None),
        ("A", "after_dispatch", "call", "A-server", None),
    ]


def test_headers_and_context_travel_and_the_callers_dict_is_untouched(namespace: str) -> None:
    server_rpc = memory_rpc(namespace, [Enrich()])
    client = memory_rpc(namespace, [Enrich()])
    with server_rpc, client:
        server_rpc.serve("svc", [Endpoint()]).start()
        mine = {"request_id": "r1"}
        seen = client.call(mine, "svc", {"method": "whoami", "args": {}})
    assert seen == {"request_id": "r1", "sent_by": "enrich", "user": "alice"}
    assert mine == {"request_id": "r1"}


def test_server_refusal_reaches_the_caller_and_the_method_never_runs(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    endpoint = Endpoint()
    server_rpc = memory_rpc(namespace)
    client = memory_rpc(namespace)  # sends no token
    with server_rpc, client:
        server = server_rpc.serve("svc", [endpoint],
                                  interceptors=[Journal("S", log), Enrich()]).start()
        with pytest.raises(RemoteError) as info:
            client.call({}, "svc", {"method": "note", "args": {"value": 1}})
        assert info.value.exc_type == "PermissionError"
        assert "bad token" in info.value.value
        assert info.value.traceback == ""
        client.cast({}, "svc", {"method": "note", "args": {"value": 2}})
        assert wait_until(lambda: server.cell.stats.get("refused") == 2)
        assert endpoint.seen == []
        assert wait_until(lambda: len(log) == 4)
    assert [e[1] for e in log if e[1] == "after_dispatch"] == ["after_dispatch"] * 2
    assert {e[4] for e in log if e[1] == "after_dispatch"} == {"PermissionError"}


def test_serve_interceptors_apply_to_that_server_only(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    server_rpc = memory_rpc(namespace)
    client = memory_rpc(namespace)
    with server_rpc, client:
        server_rpc.serve("watched", [Endpoint()], interceptors=[Journal("W", log)]).start()
        server_rpc.serve("plain", [Endpoint()]).start()
        client.call({}, "plain", {"method": "whoami", "args": {}})
        client.call({}, "watched", {"method": "whoami", "args": {}})
        assert wait_until(lambda: len(log) == 2)
    assert all(e[0] == "W" for e in log)


def test_client_refusal_sends_nothing(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []

    class NoCasts(Interceptor):
        def before_send(self, request: OutgoingRequest) -> None:
            if request.kind == "cast":
                raise PermissionError("casts are off")

    endpoint = Endpoint()
    server_rpc = memory_rpc(namespace)
    client = memory_rpc(namespace, [Journal("a", log), NoCasts()])
    with server_rpc, client:
        server_rpc.serve("svc", [endpoint]).start()
        with pytest.raises(PermissionError):
            client.cast({}, "svc", {"method": "note", "args": {"value": 1}})
        assert client.stats()[client.default_cell]["sent"] == 0
    assert log == [("a", "before_send", "cast", "note"),
                   ("a", "after_send", "cast", "a-state", "error")]


def test_every_kind_and_outcome_is_seen(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    server_rpc = memory_rpc(namespace)
    client = memory_rpc(namespace, [Journal("c", log)])
    with server_rpc, client:
        server_rpc.serve("svc", [Endpoint()]).start()
        client.cast({}, "svc", {"method": "note", "args": {"value": 1}})
        with pytest.raises(RemoteError):
            client.call({}, "svc", {"method": "fail", "args": {}})
        with pytest.raises(Timeout):
            client.call({}, "svc", {"method": "slow", "args": {}}, timeout=0.2)
        with pytest.raises(Undeliverable):
            client.call({}, "nobody", {"method": "whoami", "args": {}})
        assert list(client.stream({}, "svc", {"method": "count", "args": {"n": 3}})) == [0, 1, 2]
        reader = client.stream({}, "svc", {"method": "count", "args": {"n": 100}})
        next(reader)
        reader.close()
        assert len(client.gather({}, "svc", {"method": "whoami", "args": {}},
                                 timeout=0.2)) == 1
        client.ping(client.make_destination("svc"))  # answered by rpccore: not intercepted
    after = [(e[2], e[4]) for e in log if e[1] == "after_send"]
    assert after == [("cast", "ok"), ("call", "remote_error"), ("call", "timeout"),
                     ("call", "undeliverable"), ("stream", "ok"), ("stream", "ok"),
                     ("gather", "ok")]


def test_a_failing_after_hook_is_logged_not_raised(namespace: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Interceptor):
        def after_send(self, request: OutgoingRequest, state: Any,
                       error: BaseException | None) -> None:
            raise RuntimeError("bug in an interceptor")

    server_rpc = memory_rpc(namespace)
    client = memory_rpc(namespace, [Broken()])
    with server_rpc, client:
        server_rpc.serve("svc", [Endpoint()]).start()
        assert client.call({"k": 1}, "svc", {"method": "whoami", "args": {}}) == {"k": 1}
    assert "bug in an interceptor" in caplog.text


def test_no_interceptor_no_chain_and_no_header_field(namespace: str) -> None:
    client = memory_rpc(namespace)
    assert client.interceptors == [] and client._chain is None
    sent: list[bytes] = []

    class Quiet(Interceptor):
        def before_send(self, request: OutgoingRequest) -> None:
            pass  # adds no header

    for rpc in (client, memory_rpc(namespace, [Quiet()])):
        with rpc:
            rpc.serve("svc", [Endpoint()]).start()
            driver = rpc.cell().driver()
            send = driver.send

            def capture(dest: Any, body: bytes, _send: Any = send, **kw: Any) -> None:
                sent.append(body)
                _send(dest, body, **kw)

            driver.send = capture  # type: ignore[method-assign]
            rpc.cast({}, "svc", {"method": "note", "args": {"value": 1}})
    assert len(sent) == 2 and all(b'"hdr"' not in body for body in sent)


def test_only_interceptors_are_accepted() -> None:
    with pytest.raises(TypeError):
        InterceptorChain([object()])  # type: ignore[list-item]
    assert InterceptorChain.of([], None) is None


def test_notifications_are_intercepted_on_the_way_out(namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    received: list[str] = []

    class Audit:
        def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str,
                 payload: Any, metadata: dict[str, Any]) -> None:
            received.append(event_type)

    client = memory_rpc(namespace, [Journal("n", log), Enrich()])
    with client:
        client.listener(["audit"], [Audit()]).start()
        client.notifier("svc.host1", topics=["audit"]).info({}, "svc.started", {"n": 1})
        assert wait_until(lambda: received == ["svc.started"])
    assert wait_until(lambda: len(log) == 4)
    assert sorted(log) == sorted([("n", "before_send", "notify", "svc.started"),
                                  ("n", "after_send", "notify", "n-state", "ok"),
                                  ("n", "before_dispatch", "notify", "svc.started"),
                                  ("n", "after_dispatch", "notify", "n-server", None)])


def test_a_listener_sees_headers_in_its_context_and_a_refusal_runs_nothing(
        namespace: str) -> None:
    received: list[tuple[str, Any]] = []

    class Audit:
        def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str,
                 payload: Any, metadata: dict[str, Any]) -> None:
            received.append((event_type, ctx.get("user")))

    class RefuseBilling(Interceptor):
        def before_dispatch(self, request: IncomingRequest) -> None:
            if request.kind == "notify" and request.method.startswith("billing."):
                raise PermissionError("not for this pool")

    with memory_rpc(namespace, [Enrich(), RefuseBilling()]) as rpc:
        rpc.listener(["audit"], [Audit()]).start()
        notifier = rpc.notifier("svc.host1", topics=["audit"])
        notifier.info({}, "billing.charged", {"n": 1})
        notifier.info({}, "svc.started", {"n": 2})
        assert wait_until(lambda: received == [("svc.started", "alice")])
        assert wait_until(lambda: rpc.stats()[rpc.default_cell]["refused"] == 1)
        time.sleep(0.2)  # the refused one is not run late either
        assert received == [("svc.started", "alice")]


class Switchable(Journal):
    """A :class:`Journal` that switches itself off (``enabled``) on demand,
    counting how often it is asked."""

    def __init__(self, name: str, log: list[tuple[Any, ...]]) -> None:
        super().__init__(name, log)
        self.on = True
        self.asked = 0

    def enabled(self) -> bool:
        with self.lock:
            self.asked += 1
        return self.on


def test_an_interceptor_switched_off_is_skipped_and_asked_once_per_request(
        namespace: str) -> None:
    log: list[tuple[Any, ...]] = []
    server_gate, client_gate = Switchable("S", log), Switchable("c", log)
    server_rpc = memory_rpc(namespace, [server_gate, Journal("T", log)])
    client = memory_rpc(namespace, [Journal("b", log), client_gate])
    with server_rpc, client:
        server_rpc.serve("svc", [Endpoint()]).start()
        for on in (True, False, True):
            server_gate.on = client_gate.on = on
            client.call({}, "svc", {"method": "whoami", "args": {}})
    assert server_gate.asked == 3 and client_gate.asked == 3
    # switched on, off, on: the interceptor that stays on runs every time, in order
    names = [entry[0] + ":" + entry[1] for entry in log]
    on = ["b:before_send", "c:before_send", "S:before_dispatch", "T:before_dispatch",
          "T:after_dispatch", "S:after_dispatch", "c:after_send", "b:after_send"]
    off = ["b:before_send", "T:before_dispatch", "T:after_dispatch", "b:after_send"]
    assert names == on + off + on
