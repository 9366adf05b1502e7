"""examples/prometheus works as its README says: the metrics are served in
Prometheus' text format, with rpccore's histograms and counters."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "prometheus" / "export_metrics.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_example_serves_rpccore_metrics() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", str(port), "--calls", "20",
                             "--seconds", "60"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("metrics at http://127.0.0.1:")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
    finally:
        proc.kill()
        proc.wait(10)
    lines = [line for line in text.splitlines() if not line.startswith("#")]

    def value(prefix: str, *labels: str) -> float:
        found = [line for line in lines if line.startswith(prefix + "{")
                 and all(label in line for label in labels)]
        assert len(found) == 1, (prefix, labels, found)
        return float(found[0].rsplit(" ", 1)[1])

    ok = ('rpc_method="add"', 'rpccore_kind="call"', 'rpccore_outcome="ok"',
          'rpc_service="calculator"')
    assert value("rpc_client_duration_milliseconds_count", *ok) == 20
    assert value("rpc_server_duration_milliseconds_count", *ok) == 20
    assert value("rpc_client_duration_milliseconds_count", 'rpc_method="divide"',
                 'rpccore_outcome="remote_error"') == 2
    assert value("rpccore_sent_total", 'rpccore_cell="default"') == 42  # 22 calls, 20 casts
    assert value("rpccore_remote_errors_total", 'rpccore_cell="default"') == 2
