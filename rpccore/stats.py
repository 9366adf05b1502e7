"""Per-cell counters, exposed through ``RPC.stats()``."""

from __future__ import annotations

import itertools
import threading
from typing import Protocol

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
    "nacked",             # messages the backend refused to take
    "dropped_oversize",   # messages over max_message_size, refused by the driver
    "reconnects",         # transport connections re-established
    "notifications_sent",      # notifications handed to the driver
    "notifications_received",  # notifications taken by a listener of this process
    "notifications_dropped",   # notifications the backend dropped (retention overflow)
    "notifications_requeued",  # notifications given back to the backend for later
)


class StatsSource(Protocol):
    """Anything whose counters are read by cell, as :meth:`rpccore.RPC.stats`."""

    def stats(self) -> dict[str, dict[str, int]]:
        """The counters of each cell, by cell name."""
        ...


class CellStats:
    """Thread-safe counters of one cell. Drivers may add their own names.

    Each counter is an ``itertools.count``: advancing one is a single atomic
    step in CPython, so the hot path takes no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards adding new names only
        self._counters: dict[str, itertools.count[int]] = {
            name: itertools.count() for name in COUNTERS}

    def counter(self, name: str) -> itertools.count[int]:
        """The counter of ``name`` (made on first use): ``next()`` on it
        adds one, for a hot path that counts without a call of :meth:`incr`."""
        counter = self._counters.get(name)
        if counter is None:
            with self._lock:
                counter = self._counters.setdefault(name, itertools.count())
        return counter

    def incr(self, name: str, amount: int = 1) -> None:
        counter = self._counters.get(name) or self.counter(name)
        if amount == 1:  # nearly always: no loop
            next(counter)
            return
        for _ in range(amount):
            next(counter)

    @staticmethod
    def _value(counter: itertools.count[int]) -> int:
        # repr is "count(N)": the next value, i.e. how many were taken
        return int(repr(counter)[6:-1])

    def get(self, name: str) -> int:
        counter = self._counters.get(name)
        return 0 if counter is None else self._value(counter)

    def snapshot(self) -> dict[str, int]:
        return {name: self._value(c) for name, c in list(self._counters.items())}
