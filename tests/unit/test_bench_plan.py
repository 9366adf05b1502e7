"""What the benchmark runs: quick mode covers every guarded figure; the profile summary.

Pure logic: nothing is timed and no backend is used.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.suite import guard, scenarios  # noqa: E402
from benchmarks.suite.notifications import carries_notifications  # noqa: E402
from benchmarks.suite.profiling import area, parse_raw, summarize  # noqa: E402


def keys(driver: str, quick: bool) -> set[str]:
    return {s.key for s in scenarios.selected(driver, quick)}


def test_quick_mode_measures_every_figure_the_guard_judges() -> None:
    for target in guard.TARGETS:
        if target.scenario == "notifications" and not carries_notifications(target.driver):
            continue  # "not measured" until the driver carries notifications
        quick = keys(target.driver, quick=True)
        assert target.scenario in quick, target
        if target.against.startswith("self:"):
            assert target.against.removeprefix("self:") in quick, target


def test_quick_mode_is_a_subset_and_memory_has_no_cross_process_variant() -> None:
    for driver in scenarios.SCALE:
        assert keys(driver, quick=True) < keys(driver, quick=False)
    assert keys("memory", quick=True) == {"casts", "calls", "calls8", "calls-versioned",
                                          "notifications", "calls-otel", "stream", "aio-calls"}
    assert not any(k.startswith("xproc") for k in keys("memory", quick=False))
    assert {"xproc-calls", "xproc-casts", "xproc-calls8"} <= keys("zmq", quick=True)
    assert "xproc-calls" not in keys("rabbit", quick=True)
    assert {"fanout3", "calls32", "casts-64k", "calls-1k"} <= keys("rabbit", quick=False)


def test_notifications_run_only_for_drivers_that_carry_them() -> None:
    assert carries_notifications("memory")
    assert not carries_notifications("no-such-driver")
    for driver in scenarios.SCALE:
        assert ("notifications" in keys(driver, quick=True)) == carries_notifications(driver)


def test_message_counts_divide_among_threads_and_shrink_in_quick_mode() -> None:
    for scenario in scenarios.SCENARIOS:
        for driver in scenarios.SCALE:
            full = scenarios.count_messages(driver, scenario, quick=False)
            quick = scenarios.count_messages(driver, scenario, quick=True)
            assert full % scenario.threads == 0 and quick % scenario.threads == 0
            assert scenario.threads <= quick <= full


RAW = """\
work (benchmarks/suite/workload.py:70);call (rpccore/rpc.py:240);send (rpccore_zmq/driver.py:90) 6
work (benchmarks/suite/workload.py:70);call (rpccore/rpc.py:241) 3
_run (rpccore_zmq/loop.py:200);recv_multipart (zmq/sugar/socket.py:10) 1

"""


def test_profile_summary_groups_samples_by_area_and_function() -> None:
    stacks = parse_raw(RAW.splitlines())
    assert len(stacks) == 3
    assert stacks[0][0][-1] == ("send", "rpccore_zmq/driver.py")
    assert stacks[0][1] == 6
    text = summarize(stacks)
    assert text.startswith("10 samples")
    assert " 60.0%  driver rpccore_zmq" in text
    assert " 30.0%  rpccore core" in text
    assert " 10.0%  pyzmq" in text
    assert " 90.0%  call (rpccore/rpc.py)" in text  # inclusive, counted once per stack
    assert area("json/encoder.py") == "json"
    assert area("somewhere/else.py").startswith("other")
