"""Servers and clients in separate processes, for fault tests.

``start_server(url, topic, host, log_path, **options)`` starts a process that
serves ``topic`` (and ``host``) with a :class:`Worker` endpoint, writes one
line per finished ``work`` call to ``log_path``, and prints ``ready`` once
subscribed. ``start_caller`` starts a process that makes one call and waits.
Both return a ``subprocess.Popen``; kill them with ``os.kill(p.pid, SIGKILL)``.

:class:`ServerProcess` serves any endpoints (named ``"module:Class"``, built
in the child) in a cell of any name, and can be killed or stopped in order:
the conformance kit's server peers and the rolling upgrade use it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from typing import Any

from rpccore.testing.server_peers import ServerPeer

_SERVER = r'''
import json, sys, threading, time
from rpccore.testing import single_cell_rpc

url, topic, host, log_path, options = json.loads(sys.argv[1])
lock = threading.Lock()

class Worker:
    def work(self, ctx, n, seconds=0.0):
        time.sleep(seconds)
        with lock, open(log_path, "a") as log:
            log.write(f"{n}\n")
        return n

rpc = single_cell_rpc(url, **options)
rpc.serve(rpc.make_destination(topic, host=host), [Worker()]).start()
print("ready", flush=True)
sys.stdin.read()          # runs until killed or its stdin closes
rpc.close()
'''

_CALLER = r'''
import json, sys
from rpccore.testing import single_cell_rpc

url, topic, host, args, options = json.loads(sys.argv[1])
rpc = single_cell_rpc(url, **options)
rpc.cell().driver().connect(10)
print("calling", flush=True)
print(rpc.call({}, rpc.make_destination(topic, host=host), {"method": "work", "args": args},
               timeout=60), flush=True)
'''


def _start(code: str, payload: list[Any]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, json.dumps(payload)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen[str], expected: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != expected:
        proc.kill()
        raise AssertionError(f"peer process said {line!r}, expected {expected!r} "
                             f"(exit code {proc.poll()})")


def start_server(url: str, topic: str, host: str, log_path: str,
                 **options: Any) -> subprocess.Popen[str]:
    proc = _start(_SERVER, [url, topic, host, log_path, options])
    wait_for_line(proc, "ready")
    return proc


def start_caller(url: str, topic: str, host: str | None, args: dict[str, Any],
                 **options: Any) -> subprocess.Popen[str]:
    proc = _start(_CALLER, [url, topic, host, args, options])
    wait_for_line(proc, "calling")
    return proc


def finished(log_path: str) -> list[int]:
    try:
        with open(log_path) as log:
            return [int(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []


# -- servers of any endpoints, that a test may kill or stop ---------------------

_ENDPOINT_SERVER = r'''
import importlib, json, sys
from rpccore.testing import single_cell_rpc

cell, url, options, topic, host, endpoints, paths = json.loads(sys.argv[1])
sys.path[:0] = paths
rpc = single_cell_rpc(url, cell=cell, **options)
made = []
for where, kwargs in endpoints:
    module, _, name = where.partition(":")
    made.append(getattr(importlib.import_module(module), name)(**kwargs))
server = rpc.serve(rpc.make_destination(topic, host=host), made).start()
print("ready", flush=True)
sys.stdin.read()          # runs until killed or its stdin closes
server.stop()
server.wait(30)
rpc.close()
print("stopped", flush=True)
'''

#: ``("module:Class", {keyword arguments})``: an endpoint a server process builds
EndpointSpec = tuple[str, dict[str, Any]]


class ServerProcess(ServerPeer):
    """A server in a process of its own, serving ``topic`` as ``host``.

    :meth:`kill` is SIGKILL (nothing more leaves the process: no reply, no
    keepalive, no goodbye); :meth:`stop` is an orderly stop (the server
    finishes what it runs and leaves); :meth:`close` ends it either way.
    Also the kit's ``ServerPeer`` (see
    :meth:`rpccore.testing.long_calls_conformance.LongCallConformance.start_server_peer`).
    """

    def __init__(self, url: str, topic: str, host: str, endpoints: list[EndpointSpec],
                 cell: str = "default", **options: Any) -> None:
        self.host = host
        here = os.path.dirname(os.path.abspath(__file__))
        self.proc = _start(_ENDPOINT_SERVER, [cell, url, options, topic, host,
                                              [list(e) for e in endpoints], [here]])

    def wait_ready(self) -> ServerProcess:
        """Return once the server is subscribed (raises if it died first)."""
        wait_for_line(self.proc, "ready")
        return self

    def wait_napping(self, timeout: float) -> bool:
        """True once the process printed ``napping`` (a :class:`Napper` built
        with ``announce=True`` started a nap)."""
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            return False
        return self.proc.stdout.readline().strip() == "napping"

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Close its stdin: the server stops in order and the process exits."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            wait_for_line(self.proc, "stopped")
        self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def wait_all_ready(procs: list[ServerProcess]) -> list[ServerProcess]:
    """Wait for server processes started together; if one fails, close them all."""
    try:
        for proc in procs:
            proc.wait_ready()
    except BaseException:
        for proc in procs:
            proc.close()
        raise
    return procs


class Compute:
    """The API of a rolling upgrade's old servers (2.1): answers who served it."""

    rpc_namespace = "compute"
    rpc_version = "2.1"

    def __init__(self, host: str) -> None:
        self.host = host

    def reboot(self, ctx: dict[str, Any]) -> dict[str, str]:
        return {"host": self.host, "version": self.rpc_version}


class ComputeV23(Compute):
    """The new servers' API: 2.3 adds :meth:`resize`."""

    rpc_version = "2.3"

    def resize(self, ctx: dict[str, Any], flavor: str) -> dict[str, str]:
        return {"host": self.host, "version": self.rpc_version, "flavor": flavor}
