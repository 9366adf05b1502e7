"""Each matchmaker driving real zmq cells: two servers on 127.0.0.2 and
127.0.0.3 (each its own RPC, so its own bind address), a client that reaches
them by topic only. Needs the zmq driver (drivers/zmq) and, for redis, the
machine's Redis (and a private redis-server for the outage test).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import rpccore
from private_redis import PrivateRedis, free_port
from rpccore import RPC, Server
from rpccore.testing import single_cell_rpc

REDIS_URL = "redis://127.0.0.1:6379/0"
PREFIX = "rpccore-test-zmq-" + os.urandom(4).hex()
TOPIC = "compute:v2 ä"  # characters a delimiter-joined scheme would trip on


class WhoAmI:
    def __init__(self, name: str) -> None:
        self.name = name

    def whoami(self, ctx: dict[str, Any]) -> str:
        return self.name


@pytest.fixture(scope="module", autouse=True)
def redis_keys() -> Iterator[None]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need the machine's Redis at {REDIS_URL}: {exc}")
    yield
    keys = list(client.scan_iter(match=PREFIX + ":*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def cells() -> Iterator[Callable[..., RPC]]:
    made: list[RPC] = []

    def build(**options: Any) -> RPC:
        rpc = single_cell_rpc("zmq://", rpc_response_timeout=10, zmq_lookup_cache_ttl=0,
                              **options)
        made.append(rpc)
        return rpc

    yield build
    for rpc in made:
        rpc.close()


def serve(build: Callable[..., RPC], address: str, port: int,
          **options: Any) -> tuple[RPC, Server]:
    rpc = build(zmq_bind_address=address, zmq_port=port, **options)
    dest = rpc.make_destination(TOPIC, host=f"{address}:{port}")
    server = rpc.serve(dest, [WhoAmI(address)]).start()
    return rpc, server


def answers(client: RPC, calls: int = 8) -> set[str]:
    return {client.call({}, TOPIC, {"method": "whoami", "args": {}}) for _ in range(calls)}


def run_two_servers(cells: Callable[..., RPC], **options: Any) -> tuple[RPC, list[Server]]:
    ports = [free_port(), free_port()]
    servers = [serve(cells, "127.0.0.2", ports[0], **options)[1],
               serve(cells, "127.0.0.3", ports[1], **options)[1]]
    return cells(**options), servers


def test_static(cells: Callable[..., RPC]) -> None:
    ports = [free_port(), free_port()]
    hosts = [f"127.0.0.2:{ports[0]}", f"127.0.0.3:{ports[1]}"]
    options = {"matchmaker": "static", "static_hosts": json.dumps({TOPIC: hosts})}
    serve(cells, "127.0.0.2", ports[0], **options)
    serve(cells, "127.0.0.3", ports[1], **options)
    assert answers(cells(**options)) == {"127.0.0.2", "127.0.0.3"}


def test_ring(cells: Callable[..., RPC], tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({TOPIC: [f"127.0.0.2:{ports[0]}"]}))
    options = {"matchmaker": "ring", "ringfile": str(ring)}
    serve(cells, "127.0.0.2", ports[0], **options)
    serve(cells, "127.0.0.3", ports[1], **options)
    client = cells(**options)
    assert answers(client) == {"127.0.0.2"}
    # the operator adds the second host: picked up without a restart
    tmp = tmp_path / "ring.tmp"
    tmp.write_text(json.dumps({TOPIC: [f"127.0.0.2:{ports[0]}", f"127.0.0.3:{ports[1]}"]}))
    os.replace(tmp, ring)
    assert answers(client) == {"127.0.0.2", "127.0.0.3"}


def test_redis_registration_and_clean_stop(cells: Callable[..., RPC]) -> None:
    options = {"matchmaker": "redis", "matchmaker_url": REDIS_URL,
               "matchmaker_key_prefix": PREFIX}
    client, servers = run_two_servers(cells, **options)
    assert answers(client) == {"127.0.0.2", "127.0.0.3"}
    servers[0].stop()
    servers[0].wait(10)
    # unregistered at once: every call goes to the remaining server
    assert answers(client) == {"127.0.0.3"}


def test_redis_outage_end_to_end(cells: Callable[..., RPC]) -> None:
    """Redis dies: the client keeps reaching the servers by topic from the
    hosts it last knew. Redis returns empty: the servers' registrations come
    back (their heartbeat failed during the outage, so their matchmakers
    re-register in the background) and a new client finds them."""
    with PrivateRedis() as redis_server:
        options = {"matchmaker": "redis", "matchmaker_url": redis_server.url,
                   "matchmaker_timeout": 0.3, "zmq_heartbeat_interval": 0.1}
        client, _servers = run_two_servers(cells, **options)
        assert answers(client) == {"127.0.0.2", "127.0.0.3"}
        redis_server.kill()
        assert answers(client) == {"127.0.0.2", "127.0.0.3"}
        redis_server.restart()
        fresh = cells(**options)
        deadline = time.monotonic() + 10
        while True:
            try:
                if answers(fresh, 4) == {"127.0.0.2", "127.0.0.3"}:
                    break
            except (rpccore.Undeliverable, rpccore.TransportError):
                pass  # not re-registered yet
            assert time.monotonic() < deadline, "registrations did not come back"
            time.sleep(0.05)
