"""Shared helpers of the benchmarks: interleaved repeats, medians, percentiles, ratios.

Absolute figures drift on a shared machine, so every benchmark measures its
baseline in the same run, interleaved (A, B, A, B, ...), and reports ratios.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Measured = tuple[float, list[float]]


@dataclass
class Result:
    """One scenario's figures: a rate, and call latencies where there are any."""

    name: str
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, all repeats

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100.0 * len(ordered)))]


Trial = Callable[[], tuple[float, list[float]]]


def interleave(trials: Sequence[tuple[str, Trial]], repeats: int = 3) -> dict[str, Result]:
    """Run each trial ``repeats`` times, alternating between them.

    A trial returns ``(rate, latencies)``.
    """
    results = {name: Result(name) for name, _ in trials}
    for _ in range(repeats):
        for name, trial in trials:
            rate, lat = trial()
            results[name].rates.append(rate)
            results[name].latencies.extend(lat)
    return results


def report(title: str, result: Result, baseline: Result | None = None,
           target: float | None = None) -> dict[str, object]:
    """Print one line and return it as a dict (for JSON output)."""
    line = f"{title:<44} {result.rate:>10,.0f}/s"
    row: dict[str, object] = {"scenario": title, "rate": round(result.rate, 1)}
    if result.latencies:
        p50, p99 = result.percentile(50) * 1e3, result.percentile(99) * 1e3
        p999 = result.percentile(99.9) * 1e3
        line += f"  p50 {p50:.3f} ms  p99 {p99:.3f} ms  p99.9 {p999:.3f} ms"
        row.update(p50_ms=round(p50, 4), p99_ms=round(p99, 4), p999_ms=round(p999, 4))
    if baseline is not None and baseline.rate:
        ratio = result.rate / baseline.rate
        line += f"  = {ratio:.2f}x {baseline.name}"
        row.update(baseline=baseline.name, ratio=round(ratio, 3))
        if target is not None:
            verdict = "meets" if ratio >= target else "MISSES"
            line += f" ({verdict} target {target:.2f}x)"
            row.update(target=target, meets=ratio >= target)
    print(line, flush=True)
    return row

def timed_calls(call: Callable[[int], Any], n: int, threads: int = 1) -> Measured:
    """Rate and latencies (seconds) of ``n`` calls of ``call(i)`` spread over ``threads``."""
    parts: list[list[float]] = [[] for _ in range(threads)]

    def work(k: int) -> None:
        mine = parts[k]
        for i in range(n // threads):
            t0 = time.perf_counter()
            call(i)
            mine.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    latencies = [x for part in parts for x in part]
    return len(latencies) / elapsed, latencies


def drain_until(conn: Any, stop: threading.Event, timeout: float = 0.2) -> None:
    """Run a kombu connection's consumers until ``stop`` is set."""
    while not stop.is_set():
        try:
            conn.drain_events(timeout=timeout)
        except TimeoutError:
            pass
