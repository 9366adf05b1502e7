"""RedisRegistry: the Redis side of the matchmaker (keys and scripts).

Layout: one sorted set per (cell, topic), key
``PREFIX:CELL:TOPIC`` where each part is percent-encoded
(``urllib.parse.quote(part, safe="")``), so no part contains ``:`` and two
different (prefix, cell, topic) triples never share a key. Members are hosts;
a member's score is its expiry time in milliseconds of the *Redis server's*
clock (``TIME``), so clients with skewed clocks agree. A look-up first drops
expired members, then reads the rest. The set key itself carries a Redis TTL
at least as long as its longest-lived member, so topics nobody refreshes
disappear without a look-up.

Every method raises the redis-py exception on failure; the matchmaker decides
what an unreachable Redis means.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Milliseconds of the server clock, from TIME (seconds, microseconds).
_NOW = ("local t = redis.call('TIME') "
        "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ")

_REGISTER = _NOW + """
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""

_LOOKUP = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def topic_key(prefix: str, group: str, topic: str) -> str:
    """The Redis key of ``topic`` in cell group ``group`` (injective)."""
    return ":".join(quote(part, safe="") for part in (prefix, group, topic))


class RedisRegistry:
    """Registrations of one cell in one Redis database.

    :param url: ``redis://`` or ``rediss://`` URL (may hold a password)
    :param timeout: seconds for connecting and for each reply; no retries
        here, so no call blocks much longer than this.
    :raises ValueError: the URL is not a Redis URL.
    """

    def __init__(self, url: str, prefix: str, group: str, ttl_seconds: int,
                 timeout: float) -> None:
        self._prefix = prefix
        self._group = group
        self._ttl_ms = ttl_seconds * 1000
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True)
        self._register = self._client.register_script(_REGISTER)
        self._lookup = self._client.register_script(_LOOKUP)

    def key(self, topic: str) -> str:
        return topic_key(self._prefix, self._group, topic)

    def ping(self) -> None:
        self._client.ping()

    def register(self, topic: str, host: str) -> None:
        """Add or refresh ``host`` under ``topic`` for the TTL."""
        self._register(keys=[self.key(topic)], args=[host, self._ttl_ms])

    def unregister(self, topic: str, host: str) -> None:
        self._client.zrem(self.key(topic), host)

    def lookup(self, topic: str) -> list[str]:
        """Live hosts of ``topic``, sorted."""
        hosts = self._lookup(keys=[self.key(topic)])
        return sorted(str(h) for h in hosts)

    def resync(self, registered: Iterable[tuple[str, str]],
               removed: Iterable[tuple[str, str]]) -> None:
        """Write every registration in ``registered`` and drop every pair in
        ``removed``, in one pipeline (one round trip)."""
        # redis-py loads the script (SCRIPT LOAD) before running the pipeline.
        with self._client.pipeline(transaction=False) as pipe:
            for topic, host in removed:
                pipe.zrem(self.key(topic), host)
            for topic, host in registered:
                self._register(keys=[self.key(topic)], args=[host, self._ttl_ms],
                               client=pipe)
            pipe.execute()

    def close(self) -> None:
        self._client.close()
