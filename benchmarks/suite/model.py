"""Figures of one benchmark scenario as plain data (what JSON, tables and charts show)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figures:
    """One implementation's median rate and call latencies (milliseconds)."""

    impl: str
    rate: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    repeats: int = 0

    @classmethod
    def from_result(cls, impl: str, result: Any) -> Figures:
        """From a ``benchmarks.measure.Result`` (median rate, pooled latencies)."""
        if result.latencies:
            return cls(impl, result.rate, result.percentile(50) * 1e3,
                       result.percentile(99) * 1e3, result.percentile(99.9) * 1e3,
                       len(result.rates))
        return cls(impl, result.rate, repeats=len(result.rates))


@dataclass
class Row:
    """A scenario of one driver: rpccore's figures and each peer's, in one run.

    ``unit`` names what ``rate`` counts (``msg/s``, ``calls/s``...);
    ``note`` says anything a reader needs to compare fairly.
    """

    driver: str
    scenario: str
    label: str
    rpccore: Figures
    peers: list[Figures] = field(default_factory=list)
    unit: str = "msg/s"
    note: str = ""

    def ratio(self, peer: str) -> float | None:
        """rpccore's rate over ``peer``'s; ``None`` if that peer was not measured."""
        for fig in self.peers:
            if fig.impl == peer and fig.rate > 0:
                return self.rpccore.rate / fig.rate
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = {p.impl: _round(self.ratio(p.impl)) for p in self.peers}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Row:
        return cls(data["driver"], data["scenario"], data["label"], Figures(**data["rpccore"]),
                   [Figures(**p) for p in data.get("peers", [])], data.get("unit", "msg/s"),
                   data.get("note", ""))


@dataclass
class ScaleFigure:
    """An absolute figure of the scale scenarios (no peer: nothing else does it)."""

    driver: str
    servers: int
    name: str
    value: float
    unit: str
    note: str = ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
