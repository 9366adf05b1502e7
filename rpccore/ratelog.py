"""Logging that cannot flood: hostile input may arrive thousands of times a second."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """Log at most one line per ``interval`` seconds for each key, reporting
    how many were held back in between."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self._interval) < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            msg += " (%d more like this since the last report)"
            args = (*args, held)
        self._logger.warning(msg, *args)
