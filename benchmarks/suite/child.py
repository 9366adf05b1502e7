"""A benchmark server in a separate process (the cross-process scenarios).

Started by :func:`start` as ``python -m benchmarks.suite.child SPEC_JSON``:
serves topic ``xproc`` (and ``xproc-inline`` with ``workers=0``) on the
factory's cell, prints ``ready``, and runs until
its stdin closes. What can go wrong: the driver fails to start (the child
exits and :func:`start` raises with its exit code).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def serve(spec: dict[str, object]) -> None:
    from benchmarks.suite.cells import CellFactory
    from benchmarks.suite.endpoint import Endpoint

    factory = CellFactory.from_spec(spec)
    rpc = factory.rpc(factory.hosts("xproc", 1)[0])
    rpc.serve("xproc", [Endpoint()]).start()
    rpc.serve("xproc-inline", [Endpoint()], workers=0).start()  # quick methods only
    print("ready", flush=True)
    sys.stdin.read()
    rpc.close()


def start(spec: dict[str, object]) -> subprocess.Popen[str]:
    """Start a child serving ``spec``'s cell; returns once it serves."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.suite.child", json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"benchmark server process failed (exit {proc.wait()})")
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    """Close the child's stdin and wait for it (kill it after 10 s)."""
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    serve(json.loads(sys.argv[1]))
    sys.stdout.flush()
    import os
    os._exit(0)
