"""rpccore's metric instruments, on the global meter provider.

- ``rpc.client.duration`` and ``rpc.server.duration``: histograms (ms) of
  how long requests took, by topic (``rpc.service``), method
  (``rpc.method``), outcome (``rpccore.outcome``), cell and kind; recorded
  by :class:`~rpccore.telemetry.tracing.OpenTelemetryInterceptor`.
- ``rpccore.<counter>`` (``rpccore.sent``, ``rpccore.timed_out``...): one
  observable counter for each counter of ``rpc.stats()``
  (:data:`rpccore.stats.COUNTERS`), by cell (``rpccore.cell``), summed over
  every ``RPC`` object of the process; the counters a driver adds of its own
  are ``rpccore.driver.events`` by cell and ``rpccore.counter``.

The instruments are made once per process; until the application sets a
meter provider they are OpenTelemetry's proxies, which cost next to nothing.
The counters are read from ``rpc.stats()`` at each collection: what an
``RPC`` counted between the last collection and its ``close()`` is not
reported (its counts up to that collection stay in the totals).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Histogram, Observation

from rpccore.stats import COUNTERS

if TYPE_CHECKING:
    from rpccore.stats import StatsSource

#: histogram buckets in milliseconds: a quick call takes well under one
BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
              1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0)

try:
    VERSION = metadata.version("rpccore")
except metadata.PackageNotFoundError:  # run from a source tree
    VERSION = "0"


class Instruments:
    """The process's instruments (see the module docstring)."""

    def __init__(self) -> None:
        meter = metrics.get_meter("rpccore", VERSION)
        self.client_duration: Histogram = meter.create_histogram(
            "rpc.client.duration", unit="ms",
            description="How long requests took for the caller (calls: until the reply; "
                        "casts: until the driver took them)",
            explicit_bucket_boundaries_advisory=BUCKETS_MS)
        self.server_duration: Histogram = meter.create_histogram(
            "rpc.server.duration", unit="ms",
            description="How long servers took to run and answer requests",
            explicit_bucket_boundaries_advisory=BUCKETS_MS)
        for name in COUNTERS:
            meter.create_observable_counter(
                f"rpccore.{name}", callbacks=[_observer(name)], unit="{message}",
                description=f"rpc.stats() counter {name!r}, by cell")
        meter.create_observable_counter(
            "rpccore.driver.events", callbacks=[_driver_events], unit="{event}",
            description="Counters drivers add to rpc.stats(), by cell and counter name")


_lock = threading.Lock()
_instruments: Instruments | None = None


def instruments() -> Instruments:
    """The process's instruments, made on first use."""
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = Instruments()
    return _instruments


class _StatsTotals:
    """Counters of every watched ``RPC`` summed by cell, kept monotonic: the
    last counts of an ``RPC`` closed (or a cell removed) since the previous
    collection stay in the totals."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rpcs: weakref.WeakValueDictionary[int, StatsSource] = weakref.WeakValueDictionary()
        self._last: dict[tuple[int, str], dict[str, int]] = {}
        self._retired: dict[str, dict[str, int]] = {}

    def watch(self, rpc: StatsSource) -> None:
        with self._lock:
            self._rpcs[id(rpc)] = rpc

    def totals(self) -> dict[str, dict[str, int]]:
        """``{cell: {counter: count}}`` now."""
        with self._lock:
            seen: dict[tuple[int, str], dict[str, int]] = {}
            for key, rpc in list(self._rpcs.items()):
                for cell, counts in rpc.stats().items():
                    seen[(key, cell)] = counts
            for (key, cell), counts in self._last.items():
                now = seen.get((key, cell))
                # gone, or made anew (a counter went down): the last counts
                # stay in the totals
                if now is None or any(now.get(n, 0) < v for n, v in counts.items()):
                    retired = self._retired.setdefault(cell, {})
                    for name, value in counts.items():
                        retired[name] = retired.get(name, 0) + value
            self._last = seen
            totals = {cell: dict(counts) for cell, counts in self._retired.items()}
            for (_, cell), counts in seen.items():
                into = totals.setdefault(cell, {})
                for name, value in counts.items():
                    into[name] = into.get(name, 0) + value
            return totals


_TOTALS = _StatsTotals()


def watch_stats(rpc: StatsSource) -> None:
    """Report ``rpc.stats()`` through the observable counters (held weakly:
    watching keeps no ``RPC`` alive)."""
    instruments()
    _TOTALS.watch(rpc)


def _observer(name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(counts.get(name, 0), {"rpccore.cell": cell})
                for cell, counts in _TOTALS.totals().items()]
    return observe


_CORE = frozenset(COUNTERS)


def _driver_events(options: CallbackOptions) -> Iterable[Observation]:
    return [Observation(value, {"rpccore.cell": cell, "rpccore.counter": name})
            for cell, counts in _TOTALS.totals().items()
            for name, value in counts.items() if name not in _CORE]
