"""``rpccore demo``: servers and a client on every brokerless driver, in a few
seconds; on a driver that needs a server (nats) when asked for by name."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpccore import plugins
from rpccore.errors import ConfigError, RemoteError, RPCError
from rpccore.rpc import RPC

#: Drivers that need no broker, with the URL that makes a one-machine cell.
BROKERLESS = {"memory": "memory:///demo", "zmq": "zmq://"}
#: Drivers that need a server, with the URL of one on this machine (the
#: environment variable overrides it); shown only when named (--driver nats).
ON_A_SERVER = {"nats": ("RPCCORE_DEMO_NATS_URL", "nats://127.0.0.1:4222")}


class ComputeManager:
    """The demo's endpoint: what a compute service might expose."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.refreshed = threading.Event()
        self.rebooted: list[int] = []
        self.reboot_seen = threading.Event()

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def whoami(self, ctx: dict[str, Any]) -> dict[str, Any]:
        return {"host": self.host, "caller": ctx.get("user")}

    def reboot(self, ctx: dict[str, Any], instance: int) -> None:
        self.rebooted.append(instance)
        self.reboot_seen.set()

    def refresh(self, ctx: dict[str, Any]) -> None:
        self.refreshed.set()

    def resize(self, ctx: dict[str, Any], instance: int, flavor: str) -> None:
        raise ValueError(f"flavor {flavor!r} does not exist")


def _hosts(driver: str) -> list[str]:
    # zmq hosts are addresses: loopback addresses act as separate hosts.
    return ["127.0.0.1", "127.0.0.2"] if driver == "zmq" else ["compute.1", "compute.2"]


def demo_driver(driver: str, url: str) -> None:
    print(f"\n== driver {driver} ({url})")
    topic = "compute"
    hosts = _hosts(driver)
    port = 9500 + os.getpid() % 400 if driver == "zmq" else None
    servers_rpc, managers = [], []
    extra: dict[str, Any] = {}
    if port is not None:
        extra = {"zmq_port": port, "static_hosts": {topic: hosts}}
    elif driver in ON_A_SERVER:
        extra = {"control_exchange": "rpccore-demo"}  # apart from applications' topics
    for host in hosts:
        rpc = RPC(cfg.ConfigOpts())
        rpc.remove_cell(rpc.default_cell)
        options = dict(extra, zmq_bind_address=host) if port is not None else dict(extra)
        rpc.add_cell(rpc.default_cell, url, **options)
        manager = ComputeManager(host)
        rpc.serve(rpc.make_destination(topic, host=host), [manager]).start()
        servers_rpc.append(rpc)
        managers.append(manager)
    print(f"   started 2 servers of topic {topic!r} on hosts {hosts}")
    client = RPC(cfg.ConfigOpts())
    client.remove_cell(client.default_cell)
    client.add_cell(client.default_cell, url, **extra)
    ctx = {"user": "demo"}
    try:
        start = time.monotonic()
        answer = client.call(ctx, topic, {"method": "add", "args": {"a": 1, "b": 2}}, timeout=5)
        print(f"   call add(1, 2) -> {answer}  ({(time.monotonic() - start) * 1000:.1f} ms)")
        # Some backends pick a queue group member at random (nats), not in
        # turn: call until both servers answered (or give up after 40).
        seen: set[str] = set()
        calls = 0
        while calls < 40 and (calls < 6 or len(seen) < len(hosts)):
            seen.add(client.call(ctx, topic, {"method": "whoami", "args": {}}, timeout=5)["host"])
            calls += 1
        print(f"   {calls} calls to the topic were shared by hosts {sorted(seen)}")
        dest = client.make_destination(topic, host=hosts[1])
        print(f"   call to host {hosts[1]!r} -> "
              f"{client.call(ctx, dest, {'method': 'whoami', 'args': {}}, timeout=5)}")
        client.cast(ctx, dest, {"method": "reboot", "args": {"instance": 42}})
        client.cast(ctx, client.make_destination(topic, fanout=True),
                    {"method": "refresh", "args": {}})
        got = all(m.refreshed.wait(5) for m in managers)
        print(f"   fanout refresh reached {'every' if got else 'NOT every'} server")
        try:
            client.call(ctx, topic, {"method": "resize",
                                     "args": {"instance": 42, "flavor": "huge"}}, timeout=5)
        except RemoteError as exc:
            print(f"   remote error, as expected: {exc.exc_type}: {exc.value}")
        managers[1].reboot_seen.wait(5)
        print(f"   cast reboot(42) to {hosts[1]!r} arrived: {managers[1].rebooted == [42]}")
    finally:
        client.close()
        for rpc in servers_rpc:
            rpc.close()


def run_demo(only: Sequence[str] | None = None) -> int:
    installed = {p.name for p in plugins.list_plugins()
                 if p.namespace == plugins.DRIVER_NAMESPACE and p.error is None}
    chosen = [d for d in BROKERLESS if d in installed and (not only or d in only)]
    urls = dict(BROKERLESS)
    for driver, (variable, url) in ON_A_SERVER.items():
        if driver in installed and only and driver in only:
            chosen.append(driver)
            urls[driver] = os.environ.get(variable, url)
    print("rpccore demo: casts, calls, a fanout and a remote error on "
          + ", ".join(chosen))
    failures = 0
    for driver in chosen:
        try:
            demo_driver(driver, urls[driver])
        except (RPCError, ConfigError) as exc:
            failures += 1
            print(f"   FAILED on {driver}: {type(exc).__name__}: {exc}")
    skipped = sorted(set(BROKERLESS) - set(chosen))
    if skipped and not only:
        print(f"\n(not installed, so not shown: {', '.join(skipped)})")
    on_a_server = sorted(d for d in ON_A_SERVER if d in installed and d not in chosen)
    if on_a_server and not only:
        print("\n(need a server, so shown only when named: "
              + ", ".join(f"rpccore demo --driver {d}" for d in on_a_server) + ")")
    return 1 if failures else 0
