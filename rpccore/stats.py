"""Per-cell counters, exposed through ``RPC.stats()``."""

from __future__ import annotations

import threading

COUNTERS = (
    "sent",               # envelopes handed to the driver
    "received",           # requests taken by a server of this process
    "replied",            # replies sent by servers
    "failed",             # sends the driver refused (TransportError, Undeliverable)
    "timed_out",          # calls that gave up waiting
    "remote_errors",      # calls answered with a RemoteError
    "dropped_malformed",  # envelopes that did not decode
    "dropped_unsigned",   # envelopes with a missing or wrong signature
    "dropped_replayed",   # signed envelopes seen twice
    "dropped_expired",    # requests whose caller had already given up
    "late_replies",       # replies nobody waited for any more
    "returned",           # casts the backend could not route
    "reconnects",         # transport connections re-established
)


class CellStats:
    """Thread-safe counters of one cell. Drivers may add their own names."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            try:
                self._counts[name] += amount
            except KeyError:
                self._counts[name] = amount

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
