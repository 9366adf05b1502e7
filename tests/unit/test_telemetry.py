"""rpccore.telemetry: on with OpenTelemetry installed, absent without it, no
headers under a no-op provider, the stats as observable counters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from oslo_config import cfg

import rpccore
from rpccore.errors import RemoteError, Timeout, TransportError, Undeliverable
from rpccore.opts import register_core_opts
from rpccore.telemetry.tracing import OpenTelemetryInterceptor, error_type
from rpccore.testing import memory_rpc, wait_until
from rpccore.testing.telemetry import sdk_telemetry

#: run in a child process: OpenTelemetry made invisible (as if not
#: installed), then every kind of request; prints what was imported
NOT_INSTALLED = r'''
import sys

class Hidden:
    """Wraps a finder: finds nothing of opentelemetry, as if not installed."""
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            return None
        find = getattr(self.finder, "find_spec", None)
        return None if find is None else find(name, path, target)
    def find_distributions(self, *args, **kwargs):  # entry points: rpccore's drivers
        find = getattr(self.finder, "find_distributions", None)
        return [] if find is None else find(*args, **kwargs)
    def invalidate_caches(self):
        if hasattr(self.finder, "invalidate_caches"):
            self.finder.invalidate_caches()

sys.meta_path[:] = [Hidden(f) for f in sys.meta_path]
import json, os
import rpccore
from rpccore.testing import memory_rpc

class E:
    def add(self, ctx, a, b): return a + b
    def note(self, ctx): pass
    def count(self, ctx, n): yield from range(n)

with memory_rpc() as rpc:
    rpc.serve("svc", [E()]).start()
    assert rpc.call({}, "svc", {"method": "add", "args": {"a": 1, "b": 2}}) == 3
    rpc.cast({}, "svc", {"method": "note", "args": {}})
    assert list(rpc.stream({}, "svc", {"method": "count", "args": {"n": 2}})) == [0, 1]
    rpc.gather({}, "svc", {"method": "add", "args": {"a": 1, "b": 1}}, timeout=0.1)
    interceptors = [type(i).__name__ for i in rpc.interceptors]
from rpccore import telemetry
print(json.dumps({"imported": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
                  "installed": telemetry.installed(), "interceptors": interceptors}))
'''


def run_child(code: str) -> Any:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_opentelemetry_nothing_of_it_is_imported() -> None:
    found = run_child(NOT_INSTALLED)
    assert found == {"imported": [], "installed": False, "interceptors": []}


def test_switched_off_nothing_of_it_is_imported() -> None:
    found = run_child(textwrap.dedent('''
        import json, sys
        from oslo_config import cfg
        import rpccore
        from rpccore.opts import register_core_opts
        conf = cfg.ConfigOpts()
        register_core_opts(conf)
        conf.set_override("opentelemetry", False, group="rpccore")
        with rpccore.RPC(conf) as rpc:
            rpc.serve("svc", [object()]).start()
            rpc.cast({}, "svc", {"method": "x", "args": {}})
            print(json.dumps({"imported": [m for m in sys.modules if m.startswith("opentelemetry")],
                              "interceptors": len(rpc.interceptors)}))
    '''))
    assert found == {"imported": [], "interceptors": 0}


def test_installed_it_is_the_first_interceptor() -> None:
    class Mine(rpccore.Interceptor):
        pass

    with rpccore.RPC(interceptors=[Mine()]) as rpc:
        assert [type(i) for i in rpc.interceptors] == [OpenTelemetryInterceptor, Mine]


def test_no_op_provider_carries_nothing_and_sdk_provider_a_traceparent() -> None:
    code = textwrap.dedent('''
        import json, sys
        from opentelemetry import trace
        import rpccore
        seen = []
        class Headers(rpccore.Interceptor):
            def before_send(self, request):
                seen.append(dict(request.headers))
        if sys.argv[1] == "sdk":
            from opentelemetry.sdk.trace import TracerProvider
            trace.set_tracer_provider(TracerProvider())
        else:
            trace.set_tracer_provider(trace.NoOpTracerProvider())
        rpc = rpccore.RPC(interceptors=[Headers()])
        rpc.serve("svc", [type("E", (), {"n": lambda self, ctx: 1})()]).start()
        rpc.call({}, "svc", {"method": "n", "args": {}})
        rpc.close()
        print(json.dumps(seen))
    ''')
    for mode, expected in (("noop", [{}]), ("sdk", ["traceparent"])):
        done = subprocess.run([sys.executable, "-c", code, mode], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        if mode == "noop":
            assert seen == expected
        else:
            assert len(seen) == 1 and list(seen[0]) == expected
            assert seen[0]["traceparent"].startswith("00-")


def test_stats_are_observable_counters() -> None:
    telemetry = sdk_telemetry()
    cell = "stats-" + os.urandom(3).hex()
    conf = cfg.ConfigOpts()
    register_core_opts(conf)
    rpc = rpccore.RPC(conf)
    rpc.add_cell(cell, f"memory:///{cell}")
    dest = rpc.make_destination("svc", cell=cell)

    class E:
        def note(self, ctx: dict[str, Any]) -> None:
            pass

    with rpc:
        rpc.serve(dest, [E()]).start()
        for _ in range(3):
            rpc.cast({}, dest, {"method": "note", "args": {}})
        assert wait_until(lambda: rpc.stats()[cell]["received"] == 3)

        def counted(name: str) -> int:
            data = telemetry.reader.get_metrics_data()
            return sum(p.value for r in data.resource_metrics for s in r.scope_metrics
                       for m in s.metrics if m.name == name for p in m.data.data_points
                       if (p.attributes or {}).get("rpccore.cell") == cell)

        assert counted("rpccore.sent") == 3
        assert counted("rpccore.received") == 3
    # closed: its counts stay (a counter never goes down)
    assert counted("rpccore.sent") == 3


@pytest.mark.parametrize("error, expected", [
    (RemoteError("ValueError", "x"), "ValueError"),
    (Timeout("t"), "rpccore.errors.Timeout"),
    (KeyError("k"), "KeyError"),
])
def test_error_type(error: BaseException, expected: str) -> None:
    assert error_type(error) == expected


def test_outcomes() -> None:
    from rpccore.interceptors import outcome

    assert [outcome(e) for e in (None, RemoteError("a", "b"), Timeout(), Undeliverable(),
                                 TransportError(), ValueError())] == [
        "ok", "remote_error", "timeout", "undeliverable", "transport_error", "error"]


def test_timeout_says_where_how_long_and_what_was_heard() -> None:
    class E:
        def slow(self, ctx: dict[str, Any]) -> None:
            import time
            time.sleep(1)

    with memory_rpc() as rpc:
        rpc.serve(rpc.make_destination("svc", host="h1"), [E()]).start()
        with pytest.raises(Timeout) as info:
            rpc.call({}, rpc.make_destination("svc", host="h1"),
                     {"method": "slow", "args": {}}, timeout=0.2)
        text = str(info.value)
        assert "topic='svc'" in text and "host='h1'" in text
        assert f"cell {rpc.default_cell}" in text and "memory driver" in text
        assert "within 0.2 s" in text
        assert "delivered" in text  # the driver's receipt: a server took it
        with pytest.raises(Timeout) as info:  # the server is alive, the method slow
            rpc.call({}, "svc", {"method": "slow", "args": {}}, timeout=0.5, heartbeat=0.2)
        assert "keepalives, the last" in str(info.value), str(info.value)
        assert "within 0.5 s" in str(info.value)


def test_a_notification_is_a_producer_span() -> None:
    telemetry = sdk_telemetry()
    topic = "notes-" + os.urandom(3).hex()
    telemetry.watched.add(topic)
    with memory_rpc() as rpc:
        rpc.notifier("svc.host1", topics=[topic]).warn({}, "disk.full", {"free": 0})
    [span] = telemetry.wait_spans(topic, 1, 5)
    assert span.name == f"send {topic}" and span.kind.name == "PRODUCER"
    attributes = span.attributes or {}
    assert attributes["rpc.method"] == "disk.full"
    assert attributes["rpccore.kind"] == "notify"
    assert attributes["messaging.destination.name"] == topic
    telemetry.watched.discard(topic)


def test_a_listener_makes_a_consumer_span_child_of_the_notification() -> None:
    telemetry = sdk_telemetry()
    topic = "notes-" + os.urandom(3).hex()
    telemetry.watched.add(topic)
    seen: list[str] = []

    class Disk:
        def warn(self, ctx: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            seen.append(event_type)

    with memory_rpc() as rpc:
        rpc.listener([topic], [Disk()], pool="ops").start()
        rpc.notifier("svc.host1", topics=[topic]).warn({}, "disk.full", {"free": 0})
        assert wait_until(lambda: seen == ["disk.full"])
        spans = telemetry.wait_spans(topic, 2, 5)
    producer = next(s for s in spans if s.kind.name == "PRODUCER")
    consumer = next(s for s in spans if s.kind.name == "CONSUMER")
    assert consumer.name == f"process {topic}"
    assert consumer.context.trace_id == producer.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert [link.context.span_id for link in consumer.links] == [producer.context.span_id]
    attributes = consumer.attributes or {}
    assert attributes["rpccore.kind"] == "notify" and attributes["rpc.method"] == "disk.full"
    assert attributes["messaging.operation.type"] == "process"
    telemetry.watched.discard(topic)
