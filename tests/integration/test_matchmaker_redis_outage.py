"""The redis matchmaker when Redis dies, hangs and returns, against a
private redis-server that each test starts and kills (tests/private_redis.py).

Decided behaviour (see matchmakers/redis/README.md): look-ups answer from the
last known hosts at once; registrations made during the outage are kept; when
Redis answers again the matchmaker's background thread writes every
registration made through it, without any new register() call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from oslo_config import cfg

import rpccore
from private_redis import PrivateRedis, free_port
from rpccore_matchmaker_redis import RedisMatchMaker, topic_key

GROUP = "cell:outage"


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    with PrivateRedis() as private:
        yield private


@pytest.fixture
def make() -> Iterator[Callable[..., RedisMatchMaker]]:
    made: list[RedisMatchMaker] = []

    def build(url: str, **options: Any) -> RedisMatchMaker:
        conf = cfg.ConfigOpts()
        conf.register_opts(RedisMatchMaker.options(), group=GROUP)
        conf.set_override("matchmaker_url", url, group=GROUP)
        conf.set_override("matchmaker_timeout", 0.3, group=GROUP)
        for name, value in options.items():
            conf.set_override(name, value, group=GROUP)
        mm = RedisMatchMaker(conf, GROUP)
        made.append(mm)
        return mm

    yield build
    for mm in made:
        mm.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = fn()
    return result, time.monotonic() - started


def test_lookups_answer_last_known_hosts_quickly_while_redis_is_down(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    writer = make(server.url)
    reader = make(server.url, matchmaker_cache_seconds=0)
    writer.register("compute", "127.0.0.2")
    writer.register("compute", "127.0.0.3:9600")
    assert reader.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
    assert reader.lookup("empty") == []

    server.kill()
    hosts, first = timed(lambda: reader.lookup("compute"))
    assert hosts == ["127.0.0.2", "127.0.0.3:9600"]
    assert first < 0.5, first
    assert not reader.online
    hosts, later = timed(lambda: reader.lookup("compute"))
    assert hosts == ["127.0.0.2", "127.0.0.3:9600"] and later < 0.05, later
    assert reader.lookup("empty") == []
    with pytest.raises(rpccore.TransportError, match="never-looked-up"):
        reader.lookup("never-looked-up")


def test_a_hung_redis_blocks_a_lookup_no_longer_than_the_timeout(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    reader = make(server.url, matchmaker_cache_seconds=0)
    make(server.url).register("t", "h1")
    assert reader.lookup("t") == ["h1"]
    server.pause()
    try:
        hosts, first = timed(lambda: reader.lookup("t"))
        assert hosts == ["h1"] and first < 1.0, first
        hosts, later = timed(lambda: reader.lookup("t"))
        assert hosts == ["h1"] and later < 0.05, later
    finally:
        server.resume()
    wait_for(lambda: reader.online)
    assert reader.lookup("t") == ["h1"]


def test_registrations_come_back_when_redis_restarts_empty(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    writer = make(server.url)
    writer.register("compute", "127.0.0.2")
    writer.register("compute", "127.0.0.3")
    writer.register("a:b c", "127.0.0.4")
    server.kill()
    # During the outage: no exception, local view updated.
    writer.register("compute", "127.0.0.5")
    writer.unregister("compute", "127.0.0.2")
    assert not writer.online
    assert writer.lookup("compute") == ["127.0.0.3", "127.0.0.5"]

    server.restart()  # empty: --save "" and no AOF
    wait_for(lambda: writer.online)
    reader = make(server.url, matchmaker_cache_seconds=0)
    assert reader.lookup("compute") == ["127.0.0.3", "127.0.0.5"]
    assert reader.lookup("a:b c") == ["127.0.0.4"]


def test_unregister_during_outage_is_applied_when_redis_returns(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    writer = make(server.url)
    writer.register("t", "h1")
    writer.register("t", "h2")
    server.pause()  # data survives a pause, unlike a kill
    try:
        writer.unregister("t", "h1")
        assert not writer.online
    finally:
        server.resume()
    wait_for(lambda: writer.online)
    assert make(server.url, matchmaker_cache_seconds=0).lookup("t") == ["h2"]


def test_unnoticed_restart_is_repaired_by_the_heartbeat_register(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    """A restart between two calls is not seen by this object; the driver's
    next heartbeat register() writes the registration again."""
    writer = make(server.url)
    writer.register("t", "h1")
    server.restart()
    reader = make(server.url, matchmaker_cache_seconds=0)
    assert reader.lookup("t") == []
    writer.register("t", "h1")  # the heartbeat
    assert reader.lookup("t") == ["h1"]


def test_no_redis_at_start_then_redis_appears(
        make: Callable[..., RedisMatchMaker]) -> None:
    port = free_port()
    writer = make(f"redis://127.0.0.1:{port}/0")
    writer.register("t", "h1")  # does not raise
    assert writer.lookup("t") == ["h1"]  # its own registration is known
    with PrivateRedis(port) as server:
        wait_for(lambda: writer.online)
        assert make(server.url, matchmaker_cache_seconds=0).lookup("t") == ["h1"]


def test_password_is_never_logged_or_raised(caplog: pytest.LogCaptureFixture,
                                            make: Callable[..., RedisMatchMaker]) -> None:
    caplog.set_level(logging.DEBUG)
    mm = make(f"redis://:s3cr3t-pw@127.0.0.1:{free_port()}/0")
    with pytest.raises(rpccore.TransportError) as raised:
        mm.lookup("t")
    assert "s3cr3t-pw" not in str(raised.value)
    assert "****" in str(raised.value)
    mm.register("t", "h")
    # the reconnecting thread logs its failed pings (with the error text)
    wait_for(lambda: "still unreachable" in caplog.text)
    assert "unreachable (ConnectionError" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


def test_closed_matchmaker_stops_its_thread_and_refuses_calls(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    mm = make(server.url)
    server.kill()
    mm.register("t", "h")
    thread = mm._reconnector
    assert thread is not None and thread.is_alive()
    mm.close()
    assert not thread.is_alive()
    with pytest.raises(rpccore.TransportError, match="closed"):
        mm.lookup("t")


def test_redis_error_replies_are_transport_errors(
        server: PrivateRedis, make: Callable[..., RedisMatchMaker]) -> None:
    mm = make(server.url)
    client = redis.Redis.from_url(server.url)
    client.set(topic_key("rpccore.mm", GROUP, "taken"), "not a sorted set")
    client.close()
    for call in (lambda: mm.lookup("taken"), lambda: mm.register("taken", "h"),
                 lambda: mm.unregister("taken", "h")):
        with pytest.raises(rpccore.TransportError, match="WRONGTYPE"):
            call()
    assert mm.online  # an error reply is not an outage
