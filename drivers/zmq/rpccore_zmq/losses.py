"""Host-directed casts lost per host, which make the next plain cast to that
host raise: a cast's sender learns that the host it sends to lost earlier
casts, since a plain cast itself returns before its fate is known."""

from __future__ import annotations

import threading


class LostCasts:
    """Host-directed casts given up, by host, until the next cast there asks."""

    def __init__(self) -> None:
        self._lost: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def record(self, host: str, error: Exception) -> None:
        """(Loop) one more cast to ``host`` was lost, because of ``error``."""
        with self._lock:
            count, _ = self._lost.get(host, (0, ""))
            self._lost[host] = (count + 1, str(error))

    def take(self, host: str) -> tuple[int, str] | None:
        """(Any thread) ``(count, why)`` of casts to ``host`` lost since the
        last time, or ``None``; resets the count."""
        if not self._lost:  # the common case, without the lock
            return None
        with self._lock:
            return self._lost.pop(host, None)
