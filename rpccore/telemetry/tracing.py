"""The OpenTelemetry interceptor: a span around every request on each side,
its context carried in the envelope, and the duration histograms.

A call is a CLIENT span on the caller and a SERVER span, its child, on the
server; a cast is a PRODUCER span and a CONSUMER span, its child. The
caller's span context travels in the request's headers (the envelope's
``hdr``) through the global propagator (W3C ``traceparent`` by default), so
both sides share one trace whatever the driver and process. A fanout cast's
consumers are children of its producer and also carry a link to it (one
producer, many consumers). The server's span is the current span while the
endpoint method runs, so what the method does (its own calls, its logs) is
part of the same trace. Names and attributes: :mod:`rpccore.telemetry.naming`.

With no tracer provider set (or a no-op one) spans are OpenTelemetry's
non-recording ones: nothing is injected or recorded beyond the histograms,
which the no-op meter drops.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry import metrics as otel_metrics
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from rpccore.dispatcher import exception_type_name
from rpccore.errors import RemoteError
from rpccore.interceptors import ONE_WAY, IncomingRequest, Interceptor, OutgoingRequest, outcome
from rpccore.ratelog import RateLimitedLog
from rpccore.telemetry import naming
from rpccore.telemetry.metrics import VERSION, instruments

LOG = logging.getLogger(__name__)
#: OpenTelemetry failing (a broken exporter, propagator or sampler) is
#: logged at most once a minute, and never fails or refuses a request
_RATELOG = RateLimitedLog(LOG, interval=60.0)

# Where OpenTelemetry keeps the global providers (None until one is set).
# Private names, read because the public getters cost a microsecond each
# (an environment look-up) on a path taken twice per request; without
# them every request takes the full path.
_trace_globals: Any = trace if hasattr(trace, "_TRACER_PROVIDER") else None
_metrics_globals: Any = None
try:
    from opentelemetry.metrics import _internal as _metrics_internal
except ImportError:
    pass
else:
    if hasattr(_metrics_internal, "_METER_PROVIDER"):
        _metrics_globals = _metrics_internal


_UNSEEN = object()


def _records(provider: object, noop: type) -> bool:
    return provider is not None and not isinstance(provider, noop)


_ClientState = tuple[Span, float] | None
_ServerState = tuple[Span, object, float] | None


def error_type(error: BaseException) -> str:
    """``error.type`` of a failure: the remote exception's type for a
    :class:`RemoteError`, else the exception's class name."""
    if isinstance(error, RemoteError):
        return error.exc_type
    return exception_type_name(error)


def _fail(span: Span, error: BaseException) -> None:
    kind = error_type(error)
    span.set_attribute("error.type", kind)
    text = error.value if isinstance(error, RemoteError) else str(error)
    span.set_status(Status(StatusCode.ERROR, f"{kind}: {text}"))


class OpenTelemetryInterceptor(Interceptor):
    """Spans and duration metrics for every request (see the module
    docstring). rpccore installs one in every ``RPC`` when OpenTelemetry is
    installed; there is no need to add it yourself."""

    def __init__(self) -> None:
        # A proxy until the application sets a provider, then the real one.
        self._tracer = trace.get_tracer("rpccore", VERSION)
        metrics = instruments()
        self._client_duration = metrics.client_duration
        self._server_duration = metrics.server_duration
        # a provider named by OTEL_PYTHON_TRACER_PROVIDER (or _METER_) is
        # loaded by the first call of these getters
        trace.get_tracer_provider()
        otel_metrics.get_meter_provider()
        self._tracer_provider: object = _UNSEEN
        self._meter_provider: object = _UNSEEN
        self._enabled = True

    def enabled(self) -> bool:
        """False while both global providers record nothing (none set, or
        OpenTelemetry's no-op ones): then no hook of this one runs."""
        if _trace_globals is None or _metrics_globals is None:
            return True
        tracer_provider = _trace_globals._TRACER_PROVIDER
        meter_provider = _metrics_globals._METER_PROVIDER
        if tracer_provider is not self._tracer_provider or \
                meter_provider is not self._meter_provider:
            self._tracer_provider, self._meter_provider = tracer_provider, meter_provider
            self._enabled = (_records(tracer_provider, trace.NoOpTracerProvider)
                             or _records(meter_provider, otel_metrics.NoOpMeterProvider))
        return self._enabled

    def __repr__(self) -> str:
        return "OpenTelemetryInterceptor()"

    # -- caller --------------------------------------------------------------

    def before_send(self, request: OutgoingRequest) -> _ClientState:
        try:
            kind = SpanKind.PRODUCER if request.kind in ONE_WAY else SpanKind.CLIENT
            span = self._tracer.start_span(naming.span_name(request, server=False), kind=kind,
                                           attributes=naming.client_attributes(request))
            if span.get_span_context().is_valid:  # else nothing to carry (no-op tracer)
                propagate.inject(request.headers, context=trace.set_span_in_context(span))
        except Exception as exc:
            _RATELOG.warning("send", "OpenTelemetry failed before sending %r: %r",
                             request, exc)
            return None
        return span, time.monotonic()

    def after_send(self, request: OutgoingRequest, state: _ClientState,
                   error: BaseException | None) -> None:
        if state is None:
            return
        span, started = state
        took = (time.monotonic() - started) * 1000.0
        if error is not None and span.is_recording():
            _fail(span, error)
        span.end()
        self._client_duration.record(took, naming.metric_attributes(request, outcome(error)))

    # -- server --------------------------------------------------------------

    def before_dispatch(self, request: IncomingRequest) -> _ServerState:
        try:
            return self._start_server_span(request)
        except Exception as exc:  # never refuses a request (see Interceptor)
            _RATELOG.warning("dispatch", "OpenTelemetry failed before dispatching %r: %r",
                             request, exc)
            return None

    def _start_server_span(self, request: IncomingRequest) -> _ServerState:
        parent = propagate.extract(request.headers) if request.headers else None
        links = None
        one_way = request.kind in ONE_WAY  # a cast or a notification
        if request.destination.fanout and one_way and parent is not None:
            producer = trace.get_current_span(parent).get_span_context()
            if producer.is_valid:
                links = [Link(producer)]
        kind = SpanKind.CONSUMER if one_way else SpanKind.SERVER
        span = self._tracer.start_span(naming.span_name(request, server=True), context=parent,
                                       kind=kind, attributes=naming.server_attributes(request),
                                       links=links)
        # current while the endpoint runs: its own spans and calls join the trace
        token = context.attach(trace.set_span_in_context(span, parent))
        return span, token, time.monotonic()

    def after_dispatch(self, request: IncomingRequest, state: _ServerState,
                       error: RemoteError | None) -> None:
        if state is None:
            return
        span, token, started = state
        took = (time.monotonic() - started) * 1000.0
        try:
            if error is not None and span.is_recording():
                _fail(span, error)
            span.end()
        finally:
            context.detach(token)  # type: ignore[arg-type]
        self._server_duration.record(took, naming.metric_attributes(request, outcome(error)))


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (for log lines), or
    ``None`` outside a recorded span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


__all__ = ["OpenTelemetryInterceptor", "current_trace_id", "error_type"]
