"""rpccore with OpenTelemetry installed under a no-op tracer provider: the
``calls-otel`` scenario, judged against plain rpccore calls measured in
the same scenario, interleaved with it (:data:`BASELINE`).

Every other scenario measures rpccore with its OpenTelemetry interceptor off
(:meth:`benchmarks.suite.cells.CellFactory.rpc`), the code that runs where
OpenTelemetry is not installed. Here the client and the server are
instrumented, and the process's global tracer and meter providers are
OpenTelemetry's no-op ones (set once, for the whole run: no other scenario
looks at them), as in an application that has the library but no SDK set up.
"""

from __future__ import annotations

from typing import Any

from benchmarks.measure import Measured, timed_calls
from benchmarks.suite.cells import CellFactory
from benchmarks.suite.endpoint import Endpoint
from rpccore import RPC, telemetry

TOPIC = "bench-otel"
#: the peer the instrumented calls are judged against: plain rpccore calls,
#: alternating with them in the same scenario (A, B, A, B)
BASELINE = "rpccore without OpenTelemetry"


def available() -> bool:
    """Whether OpenTelemetry's API is installed (else the scenario is not run)."""
    return telemetry.installed()


def use_noop_providers() -> None:
    """Make OpenTelemetry's no-op providers the global ones (once per process)."""
    from opentelemetry import metrics, trace

    if not isinstance(trace.get_tracer_provider(), trace.NoOpTracerProvider):
        trace.set_tracer_provider(trace.NoOpTracerProvider())
    if not isinstance(metrics.get_meter_provider(), metrics.NoOpMeterProvider):
        metrics.set_meter_provider(metrics.NoOpMeterProvider())


class NoOpTelemetryWorkload:
    """An instrumented client and server of one driver; :meth:`calls` is one trial."""

    def __init__(self, factory: CellFactory) -> None:
        use_noop_providers()
        self.rpcs: list[RPC] = []
        server = factory.rpc(factory.hosts(TOPIC, 1)[0], opentelemetry=True)
        self.rpcs.append(server)
        server.serve(TOPIC, [Endpoint()]).start()
        self.client = factory.rpc(None, opentelemetry=True)
        self.rpcs.append(self.client)
        if not self.client.interceptors:
            raise RuntimeError("rpccore did not instrument itself: is opentelemetry-api "
                               "installed?")
        self.calls(1)  # connect before anything is timed

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        payload = "x" * size

        def one(i: int) -> Any:
            return self.client.call({}, TOPIC, {"method": "work",
                                                "args": {"i": i, "payload": payload}},
                                    timeout=60)
        return timed_calls(one, n, threads)

    def close(self) -> None:
        for rpc in reversed(self.rpcs):
            rpc.close()
