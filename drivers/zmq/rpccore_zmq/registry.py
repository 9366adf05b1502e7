"""The driver's use of its matchmaker (the interface: :class:`rpccore.MatchMaker`).

Servers' (topic, host) pairs are registered when they start, again every
``zmq_heartbeat_interval`` from a background thread (so TTL-based
matchmakers stay fresh), and unregistered when they stop. Look-ups are made
only for destinations without a host, and non-empty answers are reused for
``zmq_lookup_cache_ttl`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING

from rpccore.errors import RPCError
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore.matchmaker import MatchMaker

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: Where topics go when the static matchmaker is configured with no hosts at
#: all: this machine, so that ``transport_url = zmq://`` alone works.
LOCAL_HOST = "127.0.0.1"


class Registry:
    """Registrations and look-ups of one driver; thread-safe."""

    def __init__(self, cell: CellView) -> None:
        self.cell = cell
        self.interval: float = cell.options.zmq_heartbeat_interval
        self.cache_ttl: float = cell.options.zmq_lookup_cache_ttl
        self._lock = threading.Lock()
        self._matchmaker: MatchMaker | None = None
        self._local_only = False
        self._pairs: Counter[tuple[str, str]] = Counter()
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def matchmaker(self) -> MatchMaker:
        """The cell's matchmaker, built on first use.

        :raises ConfigError: not installed, or badly configured.
        """
        mm = self._matchmaker
        if mm is not None:
            return mm
        with self._lock:
            if self._matchmaker is None:
                name = self.cell.options.matchmaker
                self._matchmaker = self.cell.load_matchmaker(name)
                options = self.cell.options
                self._local_only = (name == "static"
                                    and not getattr(options, "static_hosts", None)
                                    and not getattr(options, "default_hosts", None))
                if self._local_only:
                    LOG.info("cell %s: the static matchmaker lists no hosts: every topic "
                             "is served on this machine (%s)", self.cell.name, LOCAL_HOST)
            return self._matchmaker

    def lookup(self, topic: str) -> list[str]:
        """Hosts of ``topic`` (a shared list: do not modify).

        :raises TransportError: the matchmaker knows nothing and cannot reach
            its backend.
        :raises ConfigError: the matchmaker is not installed.
        """
        now = time.monotonic()
        cached = self._cache.get(topic)
        if cached is not None and cached[0] > now:
            return cached[1]
        hosts = list(dict.fromkeys(self.matchmaker().lookup(topic)))
        if not hosts and self._local_only:
            hosts = [LOCAL_HOST]
        if hosts and self.cache_ttl > 0:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[topic] = (now + self.cache_ttl, hosts)
        return hosts

    def cached(self, topic: str) -> list[str] | None:
        """(Never blocks) the hosts of ``topic`` while a look-up of it is
        fresh (a shared list: do not modify); ``None`` when :meth:`lookup`
        would ask the matchmaker."""
        cached = self._cache.get(topic)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def forget(self, topic: str) -> None:
        """Drop the cached hosts of ``topic``."""
        self._cache.pop(topic, None)

    def register(self, topic: str, host: str) -> None:
        """Register now (a failure is logged; the heartbeat retries)."""
        with self._lock:
            self._pairs[(topic, host)] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                                name=f"rpccore-zmq-heartbeat-{self.cell.name}")
                self._thread.start()
        self._call("register", topic, host)

    def unregister(self, topic: str, host: str) -> None:
        """Unregister once no server of this driver serves (topic, host)."""
        with self._lock:
            self._pairs[(topic, host)] -= 1
            if self._pairs[(topic, host)] > 0:
                return
            del self._pairs[(topic, host)]
        self._call("unregister", topic, host)

    def _call(self, what: str, topic: str, host: str) -> None:
        try:
            getattr(self.matchmaker(), what)(topic, host)
        except RPCError as exc:
            _RATELOG.warning(what, "cell %s: could not %s (%r, %r) with the matchmaker, "
                             "retrying every %g s: %s", self.cell.name, what, topic, host,
                             self.interval, exc)
        except Exception:
            LOG.exception("cell %s: the matchmaker failed to %s (%r, %r)", self.cell.name,
                          what, topic, host)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                pairs = list(self._pairs)
            for topic, host in pairs:
                if self._stop.is_set():
                    return
                self._call("register", topic, host)

    def close(self) -> None:
        """Unregister everything still registered, stop the heartbeat and
        close the matchmaker."""
        self._stop.set()
        with self._lock:
            pairs, self._pairs = list(self._pairs), Counter()
            thread, mm = self._thread, self._matchmaker
        if mm is None:
            return
        for topic, host in pairs:
            self._call("unregister", topic, host)
        if thread is not None:
            thread.join(5)
        try:
            mm.close()
        except Exception:
            LOG.exception("cell %s: closing the matchmaker failed", self.cell.name)
