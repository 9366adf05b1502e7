"""Results as a terminal table, Markdown and reST tables, and JSON.

Every peer's figure is shown with rpccore's rate divided by it (``1.50x``
means rpccore did 1.5 times the peer's rate), because absolute figures drift
on a shared machine and ratios measured in one interleaved run do not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.guard import Verdict
from benchmarks.suite.model import Figures, Row, ScaleFigure


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _latency(fig: Figures) -> str:
    if fig.p50_ms is None:
        return ""
    return f"{fig.p50_ms:.2f} / {fig.p99_ms:.2f} / {fig.p999_ms:.2f}"


def _ratio(row: Row, peer: Figures) -> str:
    ratio = row.ratio(peer.impl)
    return "" if ratio is None else f"{ratio:.2f}x"


def table(rows: Sequence[Row]) -> str:
    """Fixed-width table for the terminal: rpccore's line, then one per peer."""
    head = (f"{'driver':<7} {'scenario':<48} {'implementation':<18} {'rate':>11} "
            f"{'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}  rpccore/peer")
    lines = [head, "-" * len(head)]
    for row in rows:
        for i, fig in enumerate([row.rpccore, *row.peers]):
            lines.append(
                f"{row.driver if i == 0 else '':<7} {row.label if i == 0 else '':<48} "
                f"{fig.impl:<18} {fig.rate:>9,.0f}/s {_ms(fig.p50_ms):>8} {_ms(fig.p99_ms):>8} "
                f"{_ms(fig.p999_ms):>9}  {_ratio(row, fig) if i else ''}")
        if row.note:
            lines.append(f"{'':<7} {'':<48} note: {row.note}")
    return "\n".join(lines)


def _flat(rows: Sequence[Row]) -> list[list[str]]:
    """Cells of the document tables: one line per (scenario, peer)."""
    out = [["Driver", "Scenario", "rpccore", "rpccore p50 / p99 / p99.9 ms", "Peer",
            "Peer rate", "Peer p50 / p99 / p99.9 ms", "rpccore / peer"]]
    for row in rows:
        peers = row.peers or [None]
        for i, peer in enumerate(peers):
            first = i == 0
            out.append([
                row.driver if first else "", row.label if first else "",
                f"{row.rpccore.rate:,.0f} {row.unit}" if first else "",
                _latency(row.rpccore) if first else "",
                peer.impl if peer else "(none)",
                f"{peer.rate:,.0f}" if peer else "",
                _latency(peer) if peer else "",
                _ratio(row, peer) if peer else "",
            ])
    return out


def markdown(rows: Sequence[Row], scale: Sequence[ScaleFigure] = (),
             verdicts: Sequence[Verdict] = ()) -> str:
    """GitHub-flavoured Markdown: the scenarios, the scale figures, the verdicts."""
    cells = _flat(rows)
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in cells[1:]]
    if scale:
        lines += ["", "| Driver | Servers | Figure | Value |", "|---|---|---|---|"]
        lines += [f"| {s.driver} | {s.servers} | {s.name} | {s.value:,.3f} {s.unit} |"
                  for s in scale]
    if verdicts:
        lines += ["", "| Target | Verdict |", "|---|---|"]
        lines += [f"| {v.target.describe()} | {_verdict_text(v)} |" for v in verdicts]
    return "\n".join(lines) + "\n"


def _verdict_text(v: Verdict) -> str:
    if v.achieved is None:
        return v.status
    got = (f"{v.achieved:,.0f}/s" if v.target.against == "absolute" else f"{v.achieved:.2f}x")
    return f"{got}: {v.status}"


def rst_table(cells: Sequence[Sequence[str]]) -> str:
    """A reST ``list-table`` (first line is the header)."""
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for line in cells:
        for j, cell in enumerate(line):
            lines.append(f"   {'* -' if j == 0 else '  -'} {cell}".rstrip())
    return "\n".join(lines) + "\n"


def rst(rows: Sequence[Row], scale: Sequence[ScaleFigure] = (),
        verdicts: Sequence[Verdict] = ()) -> str:
    """The same tables as :func:`markdown`, as reST list-tables."""
    parts = [rst_table(_flat(rows))]
    if scale:
        parts.append(rst_table([["Driver", "Servers", "Figure", "Value"]] + [
            [s.driver, str(s.servers), s.name, f"{s.value:,.3f} {s.unit}"] for s in scale]))
    if verdicts:
        parts.append(rst_table([["Target", "Verdict"]] + [
            [v.target.describe(), _verdict_text(v)] for v in verdicts]))
    return "\n".join(parts)


def to_json(rows: Sequence[Row], scale: Sequence[ScaleFigure] = (),
            verdicts: Sequence[Verdict] = (), meta: dict[str, Any] | None = None) -> str:
    data = {
        "meta": meta or {},
        "rows": [r.to_dict() for r in rows],
        "scale": [vars(s) for s in scale],
        "verdicts": [{"target": v.target.describe(), "driver": v.target.driver,
                      "scenario": v.target.scenario, "against": v.target.against,
                      "value": v.target.value, "status": v.status, "achieved": v.achieved}
                     for v in verdicts],
    }
    return json.dumps(data, indent=2)


def load_rows(path: Path) -> tuple[list[Row], list[ScaleFigure]]:
    """Rows and scale figures back from a JSON results file (to redraw a chart)."""
    data = json.loads(path.read_text())
    return ([Row.from_dict(r) for r in data["rows"]],
            [ScaleFigure(**s) for s in data.get("scale", [])])
