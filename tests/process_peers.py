"""Servers and clients in separate processes, for fault tests.

``start_server(url, topic, host, log_path, **options)`` starts a process that
serves ``topic`` (and ``host``) with a :class:`Worker` endpoint, writes one
line per finished ``work`` call to ``log_path``, and prints ``ready`` once
subscribed. ``start_caller`` starts a process that makes one call and waits.
Both return a ``subprocess.Popen``; kill them with ``os.kill(p.pid, SIGKILL)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SERVER = r'''
import json, sys, threading, time
from oslo_config import cfg
import rpccore

url, topic, host, log_path, options = json.loads(sys.argv[1])
lock = threading.Lock()

class Worker:
    def work(self, ctx, n, seconds=0.0):
        time.sleep(seconds)
        with lock, open(log_path, "a") as log:
            log.write(f"{n}\n")
        return n

rpc = rpccore.RPC(cfg.ConfigOpts())
rpc.remove_cell(rpc.default_cell)
rpc.add_cell(rpc.default_cell, url, **options)
rpc.serve(rpc.make_destination(topic, host=host), [Worker()]).start()
print("ready", flush=True)
sys.stdin.read()          # runs until killed or its stdin closes
rpc.close()
'''

_CALLER = r'''
import json, sys
from oslo_config import cfg
import rpccore

url, topic, host, args, options = json.loads(sys.argv[1])
rpc = rpccore.RPC(cfg.ConfigOpts())
rpc.remove_cell(rpc.default_cell)
rpc.add_cell(rpc.default_cell, url, **options)
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
