"""``version_cap="auto"``: the lowest version the topic's servers announce.

A fanout ping (``rpc.ping`` of the topic's fanout) gathers for the cell's
``version_discovery_window`` the versions every running server announces;
the cap is the lowest of them in the client's namespace. It is kept for
``version_cap_cache_seconds`` and then discovered again in the background
(callers keep the old cap meanwhile), so a rolling upgrade raises the cap by
itself once the last old server has stopped.

An answer in which no server announced a version (nobody answered in the
window, or the ping failed) is not cached: the cap known before it (if any)
stays, and discovery is tried again after :data:`EMPTY_RETRY_SECONDS`. A
moment with every server down (a restart, a slow window) must neither lift
the cap nor pin "no cap" for the whole cache time.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from rpccore.destination import Destination
from rpccore.dispatcher import parse_version
from rpccore.errors import RPCError
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)


class Pinger(Protocol):
    """What a discovery needs of its ``RPC`` object: its cells and ping."""

    def cell(self, name: str | None = None) -> Cell:
        """The cell ``name`` (the default cell for ``None``)."""
        ...

    def ping(self, dest: Destination | str, timeout: float | None = None) -> Any:
        """Ping ``dest`` (a fanout destination: the list of answers)."""
        ...

#: seconds after a discovery that found no server before the next try
#: (at most ``version_cap_cache_seconds``)
EMPTY_RETRY_SECONDS = 1.0
#: seconds a discovery waits at most for the cell's connection (a client's
#: first one usually comes before anything else was sent) before gathering
CONNECT_SECONDS = 10.0

_Key = tuple[str, str, str]  # cell, topic, namespace


class VersionCaps:
    """The caps one ``RPC`` object discovered, by cell, topic and namespace.

    Each entry is ``(cap, refresh_at)``: the cap to use, and the monotonic
    time after which it is discovered again in the background.
    """

    def __init__(self, rpc: Pinger) -> None:
        self._rpc = rpc
        self._lock = threading.Lock()
        self._caps: dict[_Key, tuple[str | None, float]] = {}
        self._refreshing: set[_Key] = set()
        # while no server answers, a warning at most every 30 s per topic
        self._ratelog = RateLimitedLog(LOG, interval=30.0)

    def cap(self, dest: Destination, namespace: str | None) -> str | None:
        cell = self._rpc.cell(dest.cell)
        key = (cell.name, dest.topic, namespace or "")
        found = self._caps.get(key)
        if found is None:
            return self._discover(key)
        cap, refresh_at = found
        if time.monotonic() >= refresh_at:
            with self._lock:
                start = key not in self._refreshing
                self._refreshing.add(key)
            if start:
                threading.Thread(target=self._discover, args=(key,), daemon=True,
                                 name="rpccore-version-cap").start()
        return cap

    def _discover(self, key: _Key) -> str | None:
        cell_name, topic, namespace = key
        cache_seconds = EMPTY_RETRY_SECONDS
        try:
            try:
                cell = self._rpc.cell(cell_name)
                options = cell.options
                cache_seconds = options.version_cap_cache_seconds
                # the window is for the servers to answer, not for connecting
                cell.driver().connect(min(CONNECT_SECONDS, options.rpc_response_timeout))
                answers = self._rpc.ping(Destination(topic, None, cell_name, True),
                                         timeout=options.version_discovery_window)
                cap, why = lowest(answers, namespace), f"{len(answers)} servers answered"
            except RPCError as exc:
                cap, why = None, f"the discovery failed: {exc}"
            return self._remember(key, cap, why, cache_seconds)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _remember(self, key: _Key, found: str | None, why: str, cache_seconds: float) -> str | None:
        """Keep what a discovery found; return the cap to use now."""
        cell_name, topic, namespace = key
        now = time.monotonic()
        with self._lock:
            old = self._caps.get(key)
            before = None if old is None else old[0]
            cap: str | None
            if found is not None:
                cap, refresh_at = found, now + cache_seconds
            else:  # keep what was known; ask again soon
                cap, refresh_at = before, now + min(EMPTY_RETRY_SECONDS, cache_seconds)
            self._caps[key] = (cap, refresh_at)
        if found is None:
            self._ratelog.warning(f"{cell_name}/{topic}/{namespace}",
                             "version cap of %s in cell %s (namespace %r): no server "
                             "announced a version (%s); %s, asking again in %g s",
                             topic, cell_name, namespace, why,
                             f"keeping the cap {cap}" if cap else "no cap meanwhile",
                             refresh_at - now)
        elif before != cap:
            LOG.info("version cap of %s in cell %s (namespace %r): %s (%s)",
                     topic, cell_name, namespace, cap, why)
        return cap


def lowest(answers: list[tuple[str, Any]], namespace: str) -> str | None:
    """The lowest version announced for ``namespace`` by the servers'
    ping answers; ``None`` when no server announced one."""
    versions = []
    for _host, answer in answers:
        if isinstance(answer, dict) and isinstance(answer.get("versions"), dict):
            version = answer["versions"].get(namespace)
            try:
                versions.append((parse_version(version), version))
            except ValueError:
                continue
    return min(versions)[1] if versions else None
