"""RedisMatchMaker: expiring registrations in Redis, with an outage cache.

Behaviour when Redis is unreachable (a connection error or no answer within
``matchmaker_timeout``):

* the matchmaker goes *offline* (one log line) and a background thread pings
  Redis with a growing pause (0.1 s up to 1 s);
* ``lookup`` answers at once, without touching Redis, from the hosts it last
  knew for the topic (its last successful look-up, plus and minus the
  registrations made through this object since); it raises
  ``rpccore.TransportError`` only for a topic it knows nothing about;
* ``register``/``unregister`` update the local record and return without
  raising; they are written when Redis returns;
* when Redis answers again, every registration made through this object and
  not unregistered is written again with a full TTL, pending unregistrations
  are applied, and the matchmaker goes back *online* (one log line). This
  covers a Redis that restarted empty, without waiting for the driver's next
  heartbeat.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from oslo_config import cfg

from rpccore.errors import ConfigError, TransportError
from rpccore.matchmaker import MatchMaker
from rpccore_matchmaker_redis.options import OPTIONS, masked_url
from rpccore_matchmaker_redis.registry import RedisRegistry

LOG = logging.getLogger(__name__)

#: Errors meaning "Redis is unreachable or too slow" (AuthenticationError is
#: a ConnectionError too: a wrong password also keeps us offline, logged).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)

_FIRST_PAUSE = 0.1
_MAX_PAUSE = 1.0


@dataclass
class _Known:
    """What this object last knew of a topic's hosts."""

    hosts: list[str]
    fetched: float  # time.monotonic() of the look-up; -inf: not fresh
    version: int = 0  # bumped by every local register/unregister of the topic


class RedisMatchMaker(MatchMaker):
    """A writable matchmaker on Redis with per-host TTL.

    Options (in the cell's group): ``matchmaker_url``, ``matchmaker_ttl``,
    ``matchmaker_timeout``, ``matchmaker_cache_seconds``,
    ``matchmaker_key_prefix``. Nothing connects until the first call.

    :raises rpccore.ConfigError: (constructor) ``matchmaker_url`` is not a
        ``redis://``, ``rediss://`` or ``unix://`` URL.
    """

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        options = conf[group]
        self._url = masked_url(options.matchmaker_url)
        self._cache_seconds: float = options.matchmaker_cache_seconds
        try:
            self._registry = RedisRegistry(
                options.matchmaker_url, options.matchmaker_key_prefix, group,
                options.matchmaker_ttl, options.matchmaker_timeout)
        except ValueError as exc:
            raise ConfigError(f"[{group}] matchmaker_url {self._url}: {exc}") from None
        self._lock = threading.Lock()
        self._registered: dict[tuple[str, str], None] = {}  # ordered set
        self._removed: set[tuple[str, str]] = set()  # unregistered while offline
        self._known: dict[str, _Known] = {}
        self._online = True
        self._changed = False  # registrations changed during a resync
        self._closed = threading.Event()
        self._reconnector: threading.Thread | None = None

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """``matchmaker_url``, ``matchmaker_ttl``, ``matchmaker_timeout``,
        ``matchmaker_cache_seconds``, ``matchmaker_key_prefix``."""
        return OPTIONS

    @property
    def online(self) -> bool:
        """False while Redis is taken as unreachable."""
        return self._online

    def register(self, topic: str, host: str) -> None:
        """Add or refresh ``host`` under ``topic`` for ``matchmaker_ttl`` seconds.

        Never raises for an unreachable Redis: the registration is kept and
        written when Redis answers again.

        :raises rpccore.TransportError: the matchmaker is closed, or Redis
            answered with an error (e.g. the key holds another type).
        """
        self._check_open()
        with self._lock:
            self._registered[(topic, host)] = None
            self._removed.discard((topic, host))
            self._changed = True
            known = self._known.setdefault(topic, _Known([], float("-inf")))
            if host not in known.hosts:
                known.hosts = sorted([*known.hosts, host])
            known.fetched = float("-inf")
            known.version += 1
            online = self._online
        if online:
            try:
                self._registry.register(topic, host)
            except UNREACHABLE as exc:
                self._go_offline(exc)
            except redis.RedisError as exc:
                raise self._failure("register", topic, exc) from None
            finally:
                self._written(topic)

    def unregister(self, topic: str, host: str) -> None:
        """Remove ``host`` from ``topic`` at once (or when Redis returns).

        :raises rpccore.TransportError: the matchmaker is closed, or Redis
            answered with an error (e.g. the key holds another type).
        """
        self._check_open()
        with self._lock:
            self._registered.pop((topic, host), None)
            self._removed.add((topic, host))
            self._changed = True
            known = self._known.get(topic)
            if known is not None:
                known.hosts = [h for h in known.hosts if h != host]
                known.fetched = float("-inf")
                known.version += 1
            online = self._online
        if online:
            try:
                self._registry.unregister(topic, host)
                with self._lock:
                    if (topic, host) not in self._registered:
                        self._removed.discard((topic, host))
            except UNREACHABLE as exc:
                self._go_offline(exc)
            except redis.RedisError as exc:
                raise self._failure("unregister", topic, exc) from None
            finally:
                self._written(topic)

    def _written(self, topic: str) -> None:
        """A local change of ``topic`` has reached Redis (or failed to). A
        look-up that queried Redis while it was on its way may have cached
        an answer without it: put this process's own registrations back into
        what is known, and have the next look-up ask Redis again."""
        with self._lock:
            known = self._known.get(topic)
            if known is None:
                return
            hosts = set(known.hosts)
            hosts.update(h for (t, h) in self._registered if t == topic)
            hosts.difference_update(h for (t, h) in self._removed if t == topic)
            known.hosts = sorted(hosts)
            known.fetched = float("-inf")
            known.version += 1

    def lookup(self, topic: str) -> list[str]:
        """The live hosts of ``topic`` (sorted); ``[]`` if none.

        Blocks at most about ``matchmaker_timeout`` seconds.

        :raises rpccore.TransportError: Redis is unreachable and nothing is
            known about ``topic``; Redis answered with an error; or the
            matchmaker is closed.
        """
        self._check_open()
        with self._lock:
            known = self._known.get(topic)
            online = self._online
            if (known is not None and known.hosts
                    and time.monotonic() - known.fetched < self._cache_seconds):
                return list(known.hosts)
            version = known.version if known is not None else 0
        if online:
            try:
                hosts = self._registry.lookup(topic)
            except UNREACHABLE as exc:
                self._go_offline(exc)
            except redis.RedisError as exc:
                raise self._failure("lookup", topic, exc) from None
            else:
                with self._lock:
                    known = self._known.get(topic)
                    # A local register/unregister during the query (made
                    # or written to Redis) may be missing from this answer:
                    # do not keep it.
                    if known is None or known.version == version:
                        self._known[topic] = _Known(hosts, time.monotonic(), version)
                return list(hosts)
        with self._lock:
            known = self._known.get(topic)
            if known is not None:
                return list(known.hosts)
        raise TransportError(f"redis matchmaker: {self._url} is unreachable and no "
                             f"hosts of topic {topic!r} are known")

    def close(self) -> None:
        """Stop the reconnecting thread and the Redis connections. Leaves the
        registrations in Redis (they expire). Idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        thread = self._reconnector
        if thread is not None:
            thread.join(5)
        self._registry.close()

    def _failure(self, operation: str, topic: str, exc: redis.RedisError) -> TransportError:
        """A Redis that answers with an error (a key of another type, a
        read-only replica, out of memory): not an outage, so no fallback."""
        return TransportError(f"redis matchmaker [{self.group}]: {operation} of topic "
                              f"{topic!r} at {self._url} failed: {type(exc).__name__}: {exc}")

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise TransportError(f"redis matchmaker of [{self.group}] is closed")

    def _go_offline(self, exc: BaseException) -> None:
        with self._lock:
            was_online, self._online = self._online, False
            start = self._reconnector is None and not self._closed.is_set()
            if start:
                self._reconnector = threading.Thread(
                    target=self._reconnect, daemon=True,
                    name=f"rpccore-redis-mm-{self.group}")
        if was_online:
            LOG.warning("redis matchmaker [%s]: %s unreachable (%s: %s); look-ups answer "
                        "from the last known hosts, registrations retry in the background",
                        self.group, self._url, type(exc).__name__, exc)
        if start:
            assert self._reconnector is not None
            self._reconnector.start()

    def _reconnect(self) -> None:
        """Background: ping until Redis answers, write the registrations,
        go online."""
        pause = _FIRST_PAUSE
        while not self._closed.wait(pause):
            pause = min(pause * 2, _MAX_PAUSE)
            try:
                self._registry.ping()
                while True:
                    with self._lock:
                        registered = list(self._registered)
                        removed = list(self._removed)
                        self._changed = False
                    self._registry.resync(registered, removed)
                    with self._lock:
                        if self._changed:
                            continue  # register/unregister raced the resync
                        self._removed.difference_update(removed)
                        self._online = True
                        self._reconnector = None
                    break
            except UNREACHABLE as exc:
                LOG.debug("redis matchmaker [%s]: still unreachable: %s", self.group, exc)
                continue
            except redis.RedisError as exc:
                LOG.error("redis matchmaker [%s]: re-registering at %s failed: %s",
                          self.group, self._url, exc)
                continue
            LOG.info("redis matchmaker [%s]: %s reachable again; re-registered %d "
                     "host(s), removed %d", self.group, self._url, len(registered),
                     len(removed))
            return
