"""A third-party matchmaker needs no change to rpccore: the example
distribution in examples/matchmaker-sqlite is installed from its folder into a
fresh virtual environment, passes the conformance kit there, and carries the
look-ups of a zmq cell whose calls reach servers on two hosts."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent('''
    import os, sys
    from oslo_config import cfg
    import rpccore
    from rpccore.testing import single_cell_rpc
    from rpccore_zmq.testing import free_port

    db, port = sys.argv[1], free_port()
    def rpc_for(host=None):
        options = {"zmq_bind_address": host} if host else {}
        return single_cell_rpc("zmq://", zmq_port=port, matchmaker="sqlite",
                               sqlite_path=db, **options)

    class Where:
        def __init__(self, host): self.host = host
        def where(self, ctx): return self.host

    servers = []
    for host in ("127.0.0.2", "127.0.0.3"):
        rpc = rpc_for(host)
        rpc.serve(rpc.make_destination("compute", host=host), [Where(host)]).start()
        servers.append(rpc)
    client = rpc_for()
    seen = {client.call({}, "compute", {"method": "where", "args": {}}, timeout=10)
            for _ in range(20)}
    print("served by", sorted(seen))
    assert seen == {"127.0.0.2", "127.0.0.3"}, seen
    client.close()
    for rpc in servers:
        rpc.close()
''')


def run(*cmd: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_example_matchmaker_in_a_fresh_environment(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "-q", "-e", str(ROOT), "-e", str(ROOT / "drivers/zmq"),
        "-e", str(ROOT / "matchmakers/static"), str(ROOT / "examples/matchmaker-sqlite"),
        "pytest")
    plugins = run(str(venv / "bin" / "rpccore"), "plugins")
    assert "rpccore-matchmaker-sqlite-example" in plugins
    # its own tests, built on rpccore's conformance kit, pass in that environment
    tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                str(ROOT / "examples/matchmaker-sqlite/tests"), cwd=tmp_path)
    assert " passed" in tests and "failed" not in tests
    out = run(python, "-c", SCRIPT, str(tmp_path / "hosts.sqlite"), cwd=tmp_path)
    assert "served by ['127.0.0.2', '127.0.0.3']" in out
