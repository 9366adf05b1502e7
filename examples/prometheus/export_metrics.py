"""rpccore's OpenTelemetry metrics, scraped by Prometheus.

    pip install rpccore[otel] opentelemetry-sdk opentelemetry-exporter-prometheus
    python examples/prometheus/export_metrics.py [--config-file app.conf] [--port 9464]
    curl http://127.0.0.1:9464/metrics

The only code an application needs is :func:`export_to_prometheus`: rpccore
instruments itself once OpenTelemetry is installed and reports to whatever
meter provider is global. The rest of this file serves a small endpoint and
calls it (some calls fail on purpose), so that every metric has values:

- ``rpc_client_duration_milliseconds`` and ``rpc_server_duration_milliseconds``
  (histograms, by ``rpc_service`` = topic, ``rpc_method``, ``rpccore_outcome``,
  ``rpccore_cell`` and ``rpccore_kind``);
- ``rpccore_sent_total``, ``rpccore_received_total``, ``rpccore_timed_out_total``...
  (the counters of ``rpc.stats()``, by ``rpccore_cell``).

See docs/observability.rst.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from oslo_config import cfg
from prometheus_client import start_http_server

import rpccore


def export_to_prometheus(port: int, address: str = "127.0.0.1",
                         service: str = "rpccore-example") -> None:
    """Serve every OpenTelemetry metric of this process at
    ``http://ADDRESS:PORT/metrics``, rpccore's among them."""
    start_http_server(port, addr=address)
    metrics.set_meter_provider(MeterProvider(
        resource=Resource.create({"service.name": service}),
        metric_readers=[PrometheusMetricReader()]))


class Calculator:
    def add(self, ctx: dict[str, Any], a: float, b: float) -> float:
        return a + b

    def divide(self, ctx: dict[str, Any], a: float, b: float) -> float:
        return a / b  # b == 0: the caller gets a RemoteError


def make_traffic(rpc: rpccore.RPC, calls: int) -> None:
    """Casts and calls, a tenth of them failing, to give the metrics values."""
    for i in range(calls):
        rpc.call({}, "calculator", {"method": "add", "args": {"a": i, "b": 1}}, timeout=10)
        rpc.cast({}, "calculator", {"method": "add", "args": {"a": i, "b": 2}})
        if i % 10 == 0:
            try:
                rpc.call({}, "calculator", {"method": "divide", "args": {"a": i, "b": 0}},
                         timeout=10)
            except rpccore.RemoteError:
                pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", action="append", default=[],
                        help="oslo.config file with the cells (default: one in-memory cell)")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--calls", type=int, default=100, help="calls to make")
    parser.add_argument("--seconds", type=float, default=0,
                        help="serve the metrics this long, then exit (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    export_to_prometheus(args.port)
    conf = cfg.ConfigOpts()
    conf(args=[arg for path in args.config_file for arg in ("--config-file", path)],
         project="rpccore", default_config_files=[])
    with rpccore.RPC(conf) as rpc:
        rpc.serve("calculator", [Calculator()]).start()
        make_traffic(rpc, args.calls)
        print(f"metrics at http://127.0.0.1:{args.port}/metrics", flush=True)
        try:
            time.sleep(args.seconds if args.seconds > 0 else 365 * 86400)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
