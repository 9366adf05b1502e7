"""Refusing signed envelopes seen before (replays)."""

from __future__ import annotations

import threading
import time


class ReplayGuard:
    """Remembers signed message ids until their deadline has passed.

    An envelope past its deadline is refused anyway, so ids need to be kept
    only that long.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._next_prune = time.time() + 1.0

    def first_time(self, msg_id: str, deadline: float) -> bool:
        """True the first time ``msg_id`` is offered, False on a replay."""
        now = time.time()
        with self._lock:
            if now >= self._next_prune:
                self._seen = {k: d for k, d in self._seen.items() if d > now}
                self._next_prune = now + 1.0
            if msg_id in self._seen:
                return False
            self._seen[msg_id] = deadline
            return True
