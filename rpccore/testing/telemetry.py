"""OpenTelemetry's SDK for tests: an in-memory span exporter and metric reader.

:func:`sdk_telemetry` installs the SDK's tracer and meter providers as the
process's global ones, once (OpenTelemetry allows one per process), and
returns them; only the spans of topics added to ``watched`` are kept, since
every other test of the session makes spans too. Needs ``opentelemetry-sdk``::

    telemetry = sdk_telemetry()
    telemetry.watched.add("compute")
    rpc.call({}, "compute", {"method": "add", "args": {"a": 1, "b": 2}})
    [client, server] = telemetry.wait_spans("compute", 2, timeout=5)
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rpccore.testing import wait_until

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class Telemetry:
    """The SDK's providers, installed once per process as the global ones,
    keeping the spans of watched topics (``rpc.service``) only."""

    def __init__(self) -> None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.exporter: InMemorySpanExporter = InMemorySpanExporter()
        self.reader: InMemoryMetricReader = InMemoryMetricReader()
        self.watched: set[str] = set()
        export = SimpleSpanProcessor(self.exporter)
        watched = self.watched

        class WatchedTopics(SpanProcessor):
            # every other test of the session makes spans too: keep only ours
            def on_end(self, span: ReadableSpan) -> None:
                if (span.attributes or {}).get("rpc.service") in watched:
                    export.on_end(span)

        provider = TracerProvider()
        provider.add_span_processor(WatchedTopics())
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))
        if trace.get_tracer_provider() is not provider:
            raise RuntimeError("another global tracer provider was set first; the "
                               "tracing conformance tests need theirs")

    def spans(self, topic: str) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans()
                if (s.attributes or {}).get("rpc.service") == topic]

    def wait_spans(self, topic: str, count: int, timeout: float) -> list[ReadableSpan]:
        wait_until(lambda: len(self.spans(topic)) >= count, timeout)
        return self.spans(topic)

    def points(self, name: str, topic: str) -> list[Any]:
        """Data points of metric ``name`` for ``topic`` (``rpc.service``)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [p for p in metric.data.data_points
                                  if (p.attributes or {}).get("rpc.service") == topic]
        return found


_telemetry: Telemetry | None = None
_lock = threading.Lock()


def sdk_telemetry() -> Telemetry:
    """The process's :class:`Telemetry`, installed on first use."""
    global _telemetry
    with _lock:
        if _telemetry is None:
            _telemetry = Telemetry()
        return _telemetry
