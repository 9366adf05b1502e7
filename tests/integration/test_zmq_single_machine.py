"""``transport_url = zmq://`` alone works on one machine (static matchmaker,
no hosts configured): servers bind every interface, topic messages go to
127.0.0.1. The port is a free one instead of 9501, so tests never collide."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

from oslo_config import cfg

from rpccore import RPC
from rpccore_zmq.testing import free_port


class Greeter:
    def hello(self, ctx: dict[str, Any], name: str) -> str:
        return f"hello {name}"


def rpc_from_config(tmp_path: Path, port: int) -> RPC:
    path = tmp_path / f"app-{os.urandom(3).hex()}.conf"
    path.write_text(textwrap.dedent(f"""\
        [rpccore]
        cells = local

        [cell:local]
        transport_url = zmq://?zmq_port={port}
        """))
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], project="rpccore-test")
    return RPC(conf)


def test_zmq_url_alone_serves_topics_on_this_machine(tmp_path: Path) -> None:
    port = free_port()
    server_rpc, client = rpc_from_config(tmp_path, port), rpc_from_config(tmp_path, port)
    try:
        server = server_rpc.serve("greeter", [Greeter()]).start()  # no host
        assert client.call({}, "greeter", {"method": "hello", "args": {"name": "a"}},
                           timeout=5) == "hello a"
        client.cast({}, "greeter", {"method": "hello", "args": {"name": "b"}}, confirm=True)
        end = time.monotonic() + 5
        while server.cell.stats.get("received") < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert server.cell.stats.get("received") == 2
        # the client process bound nothing; the server's host is 127.0.0.1 too
        direct = client.make_destination("greeter", host="127.0.0.1")
        server_rpc.serve(direct, [Greeter()]).start()
        assert client.call({}, direct, {"method": "hello", "args": {"name": "c"}},
                           timeout=5) == "hello c"
    finally:
        client.close()
        server_rpc.close()
