"""The benchmark guard's verdicts: met, below target, below half (fails), not measured.

Pure logic on hand-made figures: nothing is timed here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.suite import guard  # noqa: E402
from benchmarks.suite.guard import BELOW, FAIL, MEETS, NOT_MEASURED, Target  # noqa: E402
from benchmarks.suite.model import Figures, Row  # noqa: E402


def row(driver: str, scenario: str, rate: float, **peers: float) -> Row:
    return Row(driver, scenario, scenario, Figures("rpccore", rate),
               [Figures(name.replace("_", " "), r) for name, r in peers.items()])


def status(target: Target, *rows: Row) -> str:
    [verdict] = guard.judge(list(rows), targets=[target])
    return verdict.status


def test_ratio_against_peer_meets_below_and_fails_at_half() -> None:
    target = Target("memory", "casts", "bare", 0.25)
    assert status(target, row("memory", "casts", 30, bare=100)) == MEETS
    assert status(target, row("memory", "casts", 25, bare=100)) == MEETS  # exactly on target
    assert status(target, row("memory", "casts", 20, bare=100)) == BELOW
    assert status(target, row("memory", "casts", 12.5, bare=100)) == BELOW  # exactly half
    assert status(target, row("memory", "casts", 12, bare=100)) == FAIL


def test_absolute_target_judges_the_rate() -> None:
    target = Target("zmq", "casts", "absolute", 20000)
    assert status(target, row("zmq", "casts", 21000)) == MEETS
    assert status(target, row("zmq", "casts", 10001)) == BELOW
    assert status(target, row("zmq", "casts", 9999)) == FAIL
    [verdict] = guard.judge([row("zmq", "casts", 30000)], targets=[target])
    assert verdict.achieved == 30000
    assert verdict.fraction == 1.5


def test_self_target_compares_two_scenarios_of_the_driver() -> None:
    target = Target("zmq", "calls8", "self:calls", 2.0)
    calls = row("zmq", "calls", 1000)
    assert status(target, calls, row("zmq", "calls8", 2500)) == MEETS
    assert status(target, calls, row("zmq", "calls8", 1500)) == BELOW
    assert status(target, calls, row("zmq", "calls8", 900)) == FAIL
    assert status(target, row("zmq", "calls8", 900)) == NOT_MEASURED  # no sequential row


def test_missing_peer_is_not_measured_and_does_not_pass_or_fail() -> None:
    target = Target("rabbit", "casts", "oslo.messaging", 3.0)
    verdicts = guard.judge([row("rabbit", "casts", 5000, raw_kombu=4000)], targets=[target])
    assert [v.status for v in verdicts] == [NOT_MEASURED]
    assert verdicts[0].achieved is None
    assert not guard.failed(verdicts)
    assert "PASS" in guard.summary(verdicts)
    assert "0 meet" in guard.summary(verdicts)
    assert "1 not measured" in guard.summary(verdicts)
    assert "not measured" in verdicts[0].line()


def test_scenario_that_produced_no_rate_is_not_measured() -> None:
    target = Target("qpid", "casts", "raw proton", 0.5)
    assert status(target, row("qpid", "casts", 0.0, raw_proton=3000)) == NOT_MEASURED
    assert status(target) == NOT_MEASURED


def test_one_figure_below_half_fails_the_run() -> None:
    verdicts = guard.judge([row("memory", "casts", 10, bare_queue_thread=100),
                            row("memory", "calls", 90, bare_queue_thread=100)],
                           targets=[Target("memory", "casts", "bare queue thread", 0.25),
                                    Target("memory", "calls", "bare queue thread", 0.6)])
    assert [v.status for v in verdicts] == [FAIL, MEETS]
    assert guard.failed(verdicts)
    assert guard.summary(verdicts).startswith("guard: FAIL (1 meet")


def test_judge_keeps_only_the_drivers_that_ran() -> None:
    verdicts = guard.judge([], drivers=["memory"])
    assert {v.target.driver for v in verdicts} == {"memory"}
    assert len(verdicts) == 7


def test_issue_targets_are_all_there() -> None:
    described = {t.describe() for t in guard.TARGETS}
    assert described == {
        "rabbit casts >= 3x oslo.messaging", "rabbit calls >= 2x oslo.messaging",
        "rabbit calls8 >= 4x oslo.messaging", "zmq xproc-calls >= 0.4x raw pyzmq",
        "zmq xproc-casts >= 20,000/s", "zmq xproc-calls8 >= 2x rpccore xproc-calls",
        "qpid casts >= 0.5x raw proton", "memory casts >= 0.25x bare queue+thread",
        "memory calls >= 0.6x bare queue+thread",
        "nats calls >= 0.5x raw nats-py", "nats casts >= 0.5x raw nats-py",
        "nats calls8 >= 2x rpccore calls"} | {
        f"{d} calls-versioned >= 0.95x rpccore calls"
        for d in ("memory", "rabbit", "qpid", "zmq", "nats")
    } | {f"{d} notifications >= 0.8x rpccore casts"
         for d in ("memory", "rabbit", "qpid", "zmq", "nats")
         } | {"rabbit notifications >= 3x oslo.messaging"} | {
        f"{d} calls-otel >= 0.9x rpccore without OpenTelemetry"
        for d in ("memory", "rabbit", "qpid", "zmq", "nats")} | {
        f"{d} stream >= 0.5x rpccore casts" for d in ("memory", "rabbit", "qpid", "zmq", "nats")
    } | {f"{d} aio-calls >= 1x rpccore calls8" for d in ("memory", "rabbit", "qpid", "zmq", "nats")
         } | {"rabbit aio-calls >= 1.5x aio-pika"}


def test_an_advisory_target_never_fails_a_run() -> None:
    target = Target("nats", "casts", "raw", 0.5, advisory=True)
    assert status(target, row("nats", "casts", 100, raw=1000)) == BELOW
    assert status(target, row("nats", "casts", 600, raw=1000)) == MEETS
