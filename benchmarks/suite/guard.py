"""The targets of the driver issues, and the guard's verdict on a run.

A target is met when rpccore's figure reaches it. The guard **fails** a run
only when a figure falls below *half* its target: benchmarks on a shared
machine are noisy, and half a target is a regression, not noise. A target
whose peer was not measured (oslo.messaging not installed, a driver not run)
is reported as ``not measured``: it neither passes nor fails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchmarks.suite.model import Row

MEETS, BELOW, FAIL, NOT_MEASURED = "meets", "below target", "FAIL", "not measured"


@dataclass(frozen=True)
class Target:
    """``scenario`` of ``driver`` must reach ``value`` times ``against``.

    ``against`` is a peer's name (``oslo.messaging``, ``raw pyzmq``...),
    ``absolute`` (``value`` is then a rate), or ``self:SCENARIO`` (a multiple
    of rpccore's own rate in another scenario of the same driver).
    ``advisory``: reported like any other, but never fails a run (a target
    known to be out of reach, kept in view; the driver's README says why).
    """

    driver: str
    scenario: str
    against: str
    value: float
    advisory: bool = False

    def describe(self) -> str:
        if self.against == "absolute":
            return f"{self.driver} {self.scenario} >= {self.value:,.0f}/s"
        other = self.against.removeprefix("self:")
        if other != self.against:
            other = f"rpccore {other}"
        return f"{self.driver} {self.scenario} >= {self.value:g}x {other}"


TARGETS: tuple[Target, ...] = (
    Target("rabbit", "casts", "oslo.messaging", 3.0),
    Target("rabbit", "calls", "oslo.messaging", 2.0),
    Target("rabbit", "calls8", "oslo.messaging", 4.0),
    # zmq: raw pyzmq's server runs in another process, so rpccore's does too
    Target("zmq", "xproc-calls", "raw pyzmq", 0.4),
    Target("zmq", "xproc-casts", "absolute", 20000.0),
    Target("zmq", "xproc-calls8", "self:xproc-calls", 2.0),
    Target("qpid", "casts", "raw proton", 0.5),
    Target("memory", "casts", "bare queue+thread", 0.25),
    Target("memory", "calls", "bare queue+thread", 0.6),
    # nats (issue 24): raw nats-py in one asyncio loop, in this process
    Target("nats", "calls", "raw nats-py", 0.5),
    # advisory: raw nats-py only appends to a buffer in one loop, and
    # rpccore's own work per cast (benchmarks/bench_core_cost.py) keeps
    # casts under 0.5x of it in most runs (drivers/nats/README.md)
    Target("nats", "casts", "raw nats-py", 0.5, advisory=True),
    Target("nats", "calls8", "self:calls", 2.0),
    # a versioned call costs no more than 5% over an unversioned one (issue 18)
    *(Target(driver, "calls-versioned", "self:calls", 0.95)
      for driver in ("memory", "rabbit", "qpid", "zmq", "nats")),
    # notifications per second >= 80% of the same driver's casts (issue 20);
    # "not measured" until a driver carries notifications
    *(Target(driver, "notifications", "self:casts", 0.8)
      for driver in ("memory", "rabbit", "qpid", "zmq", "nats")),
    Target("rabbit", "notifications", "oslo.messaging", 3.0),
    # OpenTelemetry installed, no-op providers: within 10% of plain calls (issue 22)
    *(Target(driver, "calls-otel", "rpccore without OpenTelemetry", 0.90)
      for driver in ("memory", "rabbit", "qpid", "zmq", "nats")),
    # streamed items reach at least half the driver's cast rate (issue 19)
    *(Target(driver, "stream", "self:casts", 0.5)
      for driver in ("memory", "rabbit", "qpid", "zmq", "nats")),
    # asyncio calls (issue 21): as many per second as 8 threads of the threaded
    # API, and 1.5x aio-pika's RPC pattern on rabbit
    *(Target(driver, "aio-calls", "self:calls8", 1.0)
      for driver in ("memory", "rabbit", "qpid", "zmq", "nats")),
    Target("rabbit", "aio-calls", "aio-pika", 1.5),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    status: str
    achieved: float | None  # the ratio reached (or the rate, for an absolute target)

    @property
    def fraction(self) -> float | None:
        """Achieved over target (1.0 = exactly met)."""
        return None if self.achieved is None else self.achieved / self.target.value

    def line(self) -> str:
        if self.achieved is None:
            return f"{self.target.describe():<48} {NOT_MEASURED}"
        got = (f"{self.achieved:,.0f}/s" if self.target.against == "absolute"
               else f"{self.achieved:.2f}x")
        return (f"{self.target.describe():<48} got {got:<10} "
                f"({self.fraction:.0%} of target): {self.status}")


def achieved(target: Target, rows: Iterable[Row]) -> float | None:
    """The figure that ``target`` judges, from ``rows``; ``None`` if not measured."""
    by_key = {(r.driver, r.scenario): r for r in rows}
    row = by_key.get((target.driver, target.scenario))
    if row is None or row.rpccore.rate <= 0:
        return None
    if target.against == "absolute":
        return row.rpccore.rate
    if target.against.startswith("self:"):
        other = by_key.get((target.driver, target.against.removeprefix("self:")))
        if other is None or other.rpccore.rate <= 0:
            return None
        return row.rpccore.rate / other.rpccore.rate
    return row.ratio(target.against)


def judge(rows: Sequence[Row], targets: Iterable[Target] = TARGETS,
          drivers: Iterable[str] | None = None) -> list[Verdict]:
    """One verdict per target (of ``drivers`` only, when given)."""
    wanted = None if drivers is None else set(drivers)
    verdicts = []
    for target in targets:
        if wanted is not None and target.driver not in wanted:
            continue
        got = achieved(target, rows)
        if got is None:
            status = NOT_MEASURED
        elif got >= target.value:
            status = MEETS
        elif got >= target.value / 2 or target.advisory:
            status = BELOW
        else:
            status = FAIL
        verdicts.append(Verdict(target, status, got))
    return verdicts


def failed(verdicts: Iterable[Verdict]) -> bool:
    """True when any figure fell below half its target (the run must fail)."""
    return any(v.status == FAIL for v in verdicts)


def summary(verdicts: Sequence[Verdict]) -> str:
    """The final plain line, e.g. ``guard: FAIL (5 meet, 1 below target, ...)``."""
    counts = {s: sum(v.status == s for v in verdicts) for s in (MEETS, BELOW, FAIL, NOT_MEASURED)}
    word = "FAIL" if counts[FAIL] else "PASS"
    parts = [f"{counts[MEETS]} meet", f"{counts[BELOW]} below target but above half",
             f"{counts[FAIL]} below half", f"{counts[NOT_MEASURED]} not measured"]
    return f"guard: {word} ({', '.join(parts)} of {len(verdicts)} targets)"
