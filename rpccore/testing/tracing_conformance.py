"""Tracing and metrics behaviours every driver must show (pytest), with
OpenTelemetry's SDK: an in-memory span exporter and metric reader.

Mixed into :class:`rpccore.testing.driver_conformance.DriverConformance`,
whose helpers (``rpc``, ``serve``, ``topic``, ``hosts``, ``patience``) it
uses. Needs ``opentelemetry-sdk``: see :mod:`rpccore.testing.telemetry`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from rpccore.errors import RemoteError
from rpccore.testing import wait_until
from rpccore.testing.telemetry import Telemetry, sdk_telemetry

if TYPE_CHECKING:
    from rpccore.rpc import RPC


def cell_spec(rpc: RPC) -> dict[str, Any]:
    """What builds the same default cell in another process: its name, URL
    and every option set away from its default."""
    from rpccore.opts import cell_opts

    cell = rpc.cell()
    defaults = {opt.name: opt.default for opt in cell_opts + cell.driver().options()}
    group = cell.conf[cell.group]
    options = {name: getattr(group, name) for name in group
               if name not in defaults or getattr(group, name) != defaults[name]}
    options.update(cell._pending)  # a matchmaker's options, not registered yet
    url = options.pop("transport_url", cell.options.transport_url)
    return {"cell": cell.name, "url": url, "options": options}


#: a server in another process, with the SDK's in-memory exporter; prints
#: "ready", then the JSON of the finished spans of its topic on each line read
_PEER = r'''
import json, sys, time
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rpccore.testing import single_cell_rpc

spec, topic, host, wanted = json.loads(sys.argv[1])
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

class Peer:
    def add(self, ctx, a, b):
        return a + b

rpc = single_cell_rpc(spec["url"], cell=spec["cell"], **spec["options"])
rpc.serve(rpc.make_destination(topic, host=host), [Peer()]).start()
print("ready", flush=True)
for _ in sys.stdin:
    end = time.monotonic() + 10
    while len(exporter.get_finished_spans()) < wanted and time.monotonic() < end:
        time.sleep(0.02)
    print(json.dumps([{
        "name": s.name, "kind": s.kind.name, "trace_id": s.context.trace_id,
        "span_id": s.context.span_id, "parent": s.parent.span_id if s.parent else None,
        "status": s.status.status_code.name, "attributes": dict(s.attributes or {}),
    } for s in exporter.get_finished_spans()]), flush=True)
rpc.close()
'''


class TracingConformance:
    """Spans, context propagation and metrics on the driver under test."""

    if TYPE_CHECKING:
        hosts: tuple[str, ...]
        patience: float

        def rpc(self, host: str | None = None, **options: Any) -> RPC: ...
        def serve(self, topic: str, host: str | None = None, name: str | None = None,
                  workers: int | None = None, **options: Any) -> Any: ...
        @staticmethod
        def topic(label: str = "") -> str: ...

    @pytest.fixture()
    def telemetry(self) -> Iterator[Telemetry]:
        found = sdk_telemetry()
        yield found
        found.watched.clear()
        found.exporter.clear()

    def _watch(self, telemetry: Telemetry, label: str) -> str:
        topic = self.topic(label)
        telemetry.watched.add(topic)
        return topic

    def test_call_from_another_process_is_one_trace(self, telemetry: Telemetry) -> None:
        from opentelemetry import trace

        topic = self._watch(telemetry, "trace")
        spec = cell_spec(self.rpc(self.hosts[0]))
        client = self.rpc()
        if spec["url"].startswith("memory:"):  # in-process only: the server runs here
            self.serve(topic, self.hosts[0])
            peer = None
        else:
            peer = subprocess.Popen(
                [sys.executable, "-c", _PEER, json.dumps([spec, topic, self.hosts[0], 1])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if peer is not None:
                assert peer.stdout is not None and peer.stdin is not None
                assert peer.stdout.readline().strip() == "ready"
            tracer = trace.get_tracer("conformance")
            with tracer.start_as_current_span("application") as outer:
                assert client.call({}, topic, {"method": "add", "args": {"a": 1, "b": 2}},
                                   timeout=self.patience) == 3
            mine = telemetry.spans(topic)
            if peer is not None:
                assert peer.stdout is not None and peer.stdin is not None
                peer.stdin.write("spans\n")
                peer.stdin.flush()
                theirs = [s for s in json.loads(peer.stdout.readline())
                          if s["attributes"].get("rpc.service") == topic]
            else:
                theirs = [{"kind": s.kind.name, "trace_id": s.context.trace_id,
                           "parent": s.parent.span_id if s.parent else None,
                           "name": s.name, "attributes": dict(s.attributes or {})}
                          for s in telemetry.wait_spans(topic, 2, self.patience)
                          if s.kind.name == "SERVER"]
        finally:
            if peer is not None:
                peer.kill()
                peer.wait(self.patience)
        clients = [s for s in mine if s.kind.name == "CLIENT"]
        assert len(clients) == 1, mine
        call = clients[0]
        assert len(theirs) == 1, theirs
        served = theirs[0]
        assert served["kind"] == "SERVER"
        trace_id = outer.get_span_context().trace_id
        assert call.context.trace_id == trace_id
        assert call.parent is not None and call.parent.span_id == outer.get_span_context().span_id
        assert served["trace_id"] == trace_id
        assert served["parent"] == call.context.span_id
        assert call.name == served["name"] == f"{topic}/add"
        assert served["attributes"]["rpc.system"] == "rpccore"
        assert served["attributes"]["rpc.method"] == "add"

    def test_call_span_attributes_and_error_status(self, telemetry: Telemetry) -> None:
        topic = self._watch(telemetry, "attrs")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        dest = client.make_destination(topic, host=self.hosts[0])
        with pytest.raises(RemoteError):
            client.call({}, dest, {"method": "fail", "args": {"text": "broken"}},
                        timeout=self.patience)
        spans = telemetry.wait_spans(topic, 2, self.patience)
        by_kind = {s.kind.name: s for s in spans}
        assert set(by_kind) == {"CLIENT", "SERVER"}, spans
        for span in spans:
            attributes = span.attributes or {}
            assert attributes["rpc.system"] == "rpccore"
            assert attributes["rpc.service"] == topic
            assert attributes["rpc.method"] == "fail"
            assert attributes["messaging.destination.name"] == topic
            assert attributes["rpccore.cell"] == client.default_cell
            assert attributes["rpccore.host"] == self.hosts[0]
            assert attributes["error.type"] == "ValueError"
            assert span.status.status_code.name == "ERROR"
            assert "broken" in (span.status.description or "")
        assert by_kind["SERVER"].parent.span_id == by_kind["CLIENT"].context.span_id  # type: ignore[union-attr]

    def test_cast_and_fanout_spans(self, telemetry: Telemetry) -> None:
        topic = self._watch(telemetry, "castspan")
        recorders = [self.serve(topic, host)[0] for host in self.hosts[:2]]
        client = self.rpc()
        client.cast({}, topic, {"method": "note", "args": {"value": 1}})
        spans = telemetry.wait_spans(topic, 2, self.patience)
        producer = next(s for s in spans if s.kind.name == "PRODUCER")
        consumer = next(s for s in spans if s.kind.name == "CONSUMER")
        assert producer.name == f"send {topic}" and consumer.name == f"process {topic}"
        assert consumer.context.trace_id == producer.context.trace_id
        assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
        telemetry.exporter.clear()
        client.cast({}, client.make_destination(topic, fanout=True),
                    {"method": "note", "args": {"value": 2}})
        assert wait_until(lambda: sum(len(r.seen) for r in recorders) == 3, self.patience)
        spans = telemetry.wait_spans(topic, 3, self.patience)
        producer = next(s for s in spans if s.kind.name == "PRODUCER")
        consumers = [s for s in spans if s.kind.name == "CONSUMER"]
        assert len(consumers) == 2, spans
        for span in consumers:
            assert [link.context.span_id for link in span.links] == [producer.context.span_id]
            assert span.context.trace_id == producer.context.trace_id

    def test_durations_are_recorded(self, telemetry: Telemetry) -> None:
        topic = self._watch(telemetry, "metrics")
        self.serve(topic, self.hosts[0])
        client = self.rpc()
        for i in range(3):
            client.call({}, topic, {"method": "add", "args": {"a": i, "b": 1}},
                        timeout=self.patience)
        with pytest.raises(RemoteError):
            client.call({}, topic, {"method": "fail", "args": {"text": "x"}},
                        timeout=self.patience)
        # the server records once its reply is out
        wait_until(lambda: sum(p.count for p in telemetry.points("rpc.server.duration",
                                                                   topic)) >= 4, self.patience)
        for name in ("rpc.client.duration", "rpc.server.duration"):
            found = {(p.attributes["rpc.method"], p.attributes["rpccore.outcome"]): p
                     for p in telemetry.points(name, topic)}
            assert found[("add", "ok")].count == 3, (name, found)
            assert found[("fail", "remote_error")].count == 1, (name, found)
            assert found[("add", "ok")].sum > 0
