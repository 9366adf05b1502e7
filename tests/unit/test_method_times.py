"""rpccore.method_times: how long each endpoint method has been taking."""

from __future__ import annotations

import pytest

from rpccore import method_times
from rpccore.method_times import MethodTimes


def test_nothing_is_expected_of_a_method_before_its_first_run() -> None:
    times = MethodTimes()
    assert times.expected("reboot") is None
    times.record("reboot", 0.5)
    assert times.expected("reboot") == 0.5
    assert times.expected("status") is None


def test_a_slow_run_moves_the_average_up_at_once_and_quick_runs_bring_it_down() -> None:
    times = MethodTimes()
    times.record("status", 0.0001)
    times.record("status", 1.0)  # blocked once
    after_slow = times.expected("status")
    assert after_slow == pytest.approx(0.0001 + (1.0 - 0.0001) * method_times.WEIGHT)
    for _ in range(40):
        times.record("status", 0.0001)
    settled = times.expected("status")
    assert settled is not None and settled < 0.0002


def test_the_table_stops_growing_at_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(method_times, "LIMIT", 3)
    times = MethodTimes()
    for name in ("a", "b", "c", "d"):
        times.record(name, 0.1)
    assert times.expected("c") == 0.1
    assert times.expected("d") is None
    times.record("a", 0.3)  # known methods are still updated
    assert times.expected("a") == pytest.approx(0.1 + 0.2 * method_times.WEIGHT)
