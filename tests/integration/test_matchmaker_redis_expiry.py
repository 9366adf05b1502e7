"""A server process that dies without unregistering disappears from the
redis matchmaker once its TTL passes; one that keeps its heartbeat stays.

The "server" is a child process that registers through RedisMatchMaker every
0.2 s (what the zmq driver's heartbeat does) against a private redis-server.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from oslo_config import cfg

from private_redis import PrivateRedis
from rpccore_matchmaker_redis import RedisMatchMaker

GROUP = "cell:expiry"

CHILD = textwrap.dedent("""
    import sys, time
    from oslo_config import cfg
    from rpccore_matchmaker_redis import RedisMatchMaker
    conf = cfg.ConfigOpts()
    conf.register_opts(RedisMatchMaker.options(), group=sys.argv[2])
    conf.set_override("matchmaker_url", sys.argv[1], group=sys.argv[2])
    conf.set_override("matchmaker_ttl", 1, group=sys.argv[2])
    mm = RedisMatchMaker(conf, sys.argv[2])
    mm.register("compute", sys.argv[3])
    print("registered", flush=True)
    while True:
        time.sleep(0.2)
        mm.register("compute", sys.argv[3])
""")


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    with PrivateRedis() as private:
        yield private


def start_children(url: str, hosts: list[str]) -> list[subprocess.Popen[str]]:
    children = [subprocess.Popen([sys.executable, "-c", CHILD, url, GROUP, host],
                                 stdout=subprocess.PIPE, text=True) for host in hosts]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "registered"
    except BaseException:
        for child in children:
            child.kill()
            child.wait(10)
        raise
    return children


def test_killed_server_expires_and_live_one_stays(server: PrivateRedis) -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(RedisMatchMaker.options(), group=GROUP)
    conf.set_override("matchmaker_url", server.url, group=GROUP)
    reader = RedisMatchMaker(conf, GROUP)
    children = start_children(server.url, ["127.0.0.2", "127.0.0.3"])
    try:
        assert reader.lookup("compute") == ["127.0.0.2", "127.0.0.3"]
        children[0].send_signal(signal.SIGKILL)  # no unregister
        children[0].wait(10)
        killed = time.monotonic()
        while reader.lookup("compute") != ["127.0.0.3"]:
            assert time.monotonic() - killed < 5, reader.lookup("compute")
            time.sleep(0.05)
        # gone after at most one TTL (1 s) plus one heartbeat (0.2 s) and polling
        assert time.monotonic() - killed < 2.0
        # the live server, heartbeating, outlives several TTLs
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            assert reader.lookup("compute") == ["127.0.0.3"]
            time.sleep(0.1)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.wait(10)
        reader.close()
