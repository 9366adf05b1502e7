"""Warnings that cannot flood the log: hostile or broken peers may send
thousands of bad messages a second. (rpccore has such a helper, but not in
its public driver interface, which this driver keeps to.)"""

from __future__ import annotations

import logging
import threading
import time


class QuietLog:
    """At most one warning per ``interval`` seconds for each key, saying how
    many were held back since the last one."""

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
            msg += " (and %d more like it since the last report)"
            args = (*args, held)
        self._logger.warning(msg, *args)
