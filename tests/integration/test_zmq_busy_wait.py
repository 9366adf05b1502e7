"""zmq calls that poll for their reply (zmq_busy_wait_us): quick calls to a
host do, once its round trips are known; calls to a host that has become
slow stop polling; nothing polls when the option is off (the default)."""

from __future__ import annotations

import time
from typing import Any

from rpccore_zmq.testing import free_port, zmq_rpc

HOST = "127.0.0.1"


class Endpoint:
    def ping(self, ctx: dict[str, Any]) -> str:
        return "pong"

    def slow(self, ctx: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)
        return "late"


def call(client: Any, method: str, **args: Any) -> Any:
    return client.call({}, client.make_destination("busy", host=HOST),
                       {"method": method, "args": args}, timeout=10)


def test_quick_calls_poll_and_calls_to_a_slow_host_stop_polling() -> None:
    port = free_port()
    server = zmq_rpc(port, zmq_bind_address=HOST)
    # 20 ms: generous, so that loopback round trips qualify on a loaded machine
    client = zmq_rpc(port, zmq_busy_wait_us=20_000)
    try:
        server.serve(server.make_destination("busy", host=HOST), [Endpoint()],
                     workers=0).start()
        stats = client.cell().stats
        for _ in range(20):
            assert call(client, "ping") == "pong"
        quick = stats.get("zmq_busy_waits")
        assert quick >= 10, stats.snapshot()  # most of them, once the first was timed
        for _ in range(12):  # 50 ms each: the host's average passes 20 ms
            assert call(client, "slow", seconds=0.05) == "late"
        settled = stats.get("zmq_busy_waits")
        for _ in range(3):
            assert call(client, "slow", seconds=0.05) == "late"
        assert stats.get("zmq_busy_waits") == settled  # no longer polled for
    finally:
        client.close()
        server.close()


def test_nothing_polls_by_default() -> None:
    port = free_port()
    server = zmq_rpc(port, zmq_bind_address=HOST)
    client = zmq_rpc(port)
    try:
        server.serve(server.make_destination("busy", host=HOST), [Endpoint()]).start()
        for _ in range(20):
            assert call(client, "ping") == "pong"
        stats = client.cell().stats
        assert stats.get("sent") == 20 and stats.get("zmq_busy_waits") == 0
    finally:
        client.close()
        server.close()
