"""``version_cap="auto"``: the lowest version the topic's servers announce.

A fanout ping (``rpc.ping`` of the topic's fanout) gathers for the cell's
``version_discovery_window`` the versions every running server announces;
the cap is the lowest of them in the client's namespace. It is kept for
``version_cap_cache_seconds`` and then discovered again in the background
(callers keep the old cap meanwhile), so a rolling upgrade raises the cap by
itself once the last old server has stopped.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from rpccore.destination import Destination
from rpccore.dispatcher import parse_version
from rpccore.errors import RPCError

if TYPE_CHECKING:
    from rpccore.rpc import RPC

LOG = logging.getLogger(__name__)

_Key = tuple[str, str, str]  # cell, topic, namespace


class VersionCaps:
    """The caps one ``RPC`` object discovered, by cell, topic and namespace."""

    def __init__(self, rpc: RPC) -> None:
        self._rpc = rpc
        self._lock = threading.Lock()
        self._caps: dict[_Key, tuple[str | None, float]] = {}
        self._refreshing: set[_Key] = set()

    def cap(self, dest: Destination, namespace: str | None) -> str | None:
        cell = self._rpc.cell(dest.cell)
        key = (cell.name, dest.topic, namespace or "")
        found = self._caps.get(key)
        if found is None:
            return self._discover(key)
        cap, when = found
        if time.monotonic() - when > cell.options.version_cap_cache_seconds:
            with self._lock:
                start = key not in self._refreshing
                self._refreshing.add(key)
            if start:
                threading.Thread(target=self._discover, args=(key,), daemon=True,
                                 name="rpccore-version-cap").start()
        return cap

    def _discover(self, key: _Key) -> str | None:
        cell_name, topic, namespace = key
        try:
            cell = self._rpc.cell(cell_name)
            answers = self._rpc.ping(Destination(topic, None, cell_name, True),
                                     timeout=cell.options.version_discovery_window)
            cap = lowest(answers, namespace)
            with self._lock:
                old = self._caps.get(key, (None, 0.0))[0]
                self._caps[key] = (cap, time.monotonic())
            if old != cap:
                LOG.info("version cap of %s in cell %s (namespace %r): %s (%d servers)",
                         topic, cell_name, namespace, cap, len(answers))
            return cap
        except RPCError as exc:
            LOG.warning("discovering the version cap of %s in cell %s failed: %s",
                        topic, cell_name, exc)
            return self._caps.get(key, (None, 0.0))[0]
        finally:
            with self._lock:
                self._refreshing.discard(key)


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


def discovered_cap(rpc: RPC, dest: Destination, namespace: str | None) -> str | None:
    caps = rpc.version_caps
    return caps.cap(dest, namespace)
