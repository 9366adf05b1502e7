"""Client and server ``RPC`` objects of one driver that reach each other.

Every run gets fresh names (control exchange, memory namespace, zmq cell), so
runs never see each other's messages on a shared broker. zmq servers bind
loopback addresses (127.0.0.2, .3 ...), one per server ``RPC``, on one port,
and clients find them through a static matchmaker listing those hosts.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from oslo_config import cfg

from rpccore import RPC
from rpccore.opts import register_core_opts
from rpccore.testing import single_cell_rpc

RABBIT_URL = os.environ.get("RPCCORE_BENCH_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")
QPID_URL = os.environ.get("RPCCORE_BENCH_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("RPCCORE_BENCH_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("RPCCORE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

# zmq: which loopback host serves which benchmark topic (one server RPC per host)
ZMQ_HOSTS: dict[str, list[str]] = {
    "bench": ["127.0.0.2"],
    "fan": ["127.0.0.3", "127.0.0.4", "127.0.0.5"],
    "xproc": ["127.0.0.6"],
    "xproc-inline": ["127.0.0.6"],
    "bench-otel": ["127.0.0.7"],
}
ZMQ_ANY_HOST = "127.0.0.9"


def free_port() -> int:
    """A TCP port nothing listens on right now (on every interface)."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port: int = probe.getsockname()[1]
        return port


class CellFactory:
    """Builds client and server ``RPC`` objects of ``driver`` on one shared cell config.

    :meth:`spec` and :meth:`from_spec` carry the config to a child process.
    """

    def __init__(self, driver: str, name: str | None = None, port: int | None = None) -> None:
        self.driver = driver
        self.name = name or f"bench-{os.urandom(4).hex()}"
        self.port = port or (free_port() if driver == "zmq" else 0)

    def spec(self) -> dict[str, Any]:
        return {"driver": self.driver, "name": self.name, "port": self.port}

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> CellFactory:
        return cls(spec["driver"], spec["name"], spec["port"])

    def _options(self, host: str | None) -> tuple[str, dict[str, Any]]:
        if self.driver == "memory":
            return f"memory:///{self.name}", {}
        if self.driver == "rabbit":
            return RABBIT_URL, {"control_exchange": self.name}
        if self.driver == "qpid":
            return QPID_URL, {"control_exchange": self.name}
        if self.driver == "nats":
            return NATS_URL, {"control_exchange": self.name}
        if self.driver == "zmq":
            # what serves as no host in particular (a notification listener)
            # binds ZMQ_ANY_HOST, where every other topic is looked up too
            options: dict[str, Any] = {"zmq_port": self.port, "matchmaker": "static",
                                       "static_hosts": ZMQ_HOSTS,
                                       "default_hosts": [ZMQ_ANY_HOST],
                                       "zmq_bind_address": host or ZMQ_ANY_HOST}
            return "zmq://", options
        raise ValueError(f"unknown driver {self.driver!r}")

    def rpc(self, host: str | None = None, opentelemetry: bool = False) -> RPC:
        """An ``RPC`` whose default cell is this factory's cell.

        ``host``: the loopback address a zmq server binds (ignored elsewhere).
        ``opentelemetry``: instrument it when OpenTelemetry is installed. Off
        by default, so that every figure measures rpccore as it runs without
        OpenTelemetry installed (the same code: no interceptor at all),
        whatever the benchmark's environment has; see benchmarks/suite/otel.py.
        """
        url, options = self._options(host)
        conf = cfg.ConfigOpts()
        register_core_opts(conf)
        conf.set_override("opentelemetry", opentelemetry, group="rpccore")
        return single_cell_rpc(url, cell=self.name, conf=conf, **options)

    def hosts(self, topic: str, count: int) -> list[str | None]:
        """Bind addresses for ``count`` servers of ``topic`` (zmq), else ``None`` each."""
        if self.driver == "zmq":
            return list(ZMQ_HOSTS[topic][:count])
        return [None] * count
