"""Failover across the hosts of a transport URL (machine's RabbitMQ; the
first host is a closed port)."""

from __future__ import annotations

import os
import socket
from typing import Any

import amqp

from rpccore.errors import TransportError
from rpccore.testing import single_cell_rpc
from rpccore_rabbit import addressing


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_dead_first_host_is_skipped() -> None:
    url = (f"rabbit://guest:guest@127.0.0.1:{_closed_port()},"
           "guest:guest@127.0.0.1:5672/")
    exchange = f"failover-{os.urandom(4).hex()}"
    rpcs = []
    try:
        for _ in range(2):
            rpc = single_cell_rpc(url, control_exchange=exchange)
            rpcs.append(rpc)
        server, client = rpcs
        server.serve(server.make_destination("failover"), [Adder()]).start()
        assert client.call({}, "failover", {"method": "add", "args": {"a": 1, "b": 2}},
                           timeout=10) == 3
    finally:
        for rpc in rpcs:
            rpc.close()
        with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
            conn.channel().queue_delete(  # durable: it outlives its server
                addressing.queue_name(exchange, addressing.work_key("failover")))


def test_refused_credentials_are_reported_without_the_password() -> None:
    rpc = single_cell_rpc("rabbit://guest:not-the-pw@127.0.0.1:5672/")
    try:
        driver = rpc.cell().driver()
        try:
            driver.connect(timeout=1.5)
        except TransportError as exc:
            text = str(exc)
        else:
            raise AssertionError("connected with a wrong password")
        assert "ACCESS_REFUSED" in text, text
        assert "not-the-pw" not in text
    finally:
        rpc.close()
