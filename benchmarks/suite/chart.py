"""The PNG chart: per driver, throughput and call latency, rpccore beside its peers.

One row of two panels per driver. Left: rate of every scenario (log scale),
rpccore's bar labelled with its ratio to the first peer. Right: call latency,
a solid bar to p50, a pale bar to p99 and a tick at p99.9 (log scale, ms).
Needs matplotlib (a benchmark-only dependency); draws with the Agg backend.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from benchmarks.suite.model import Figures, Row

COLORS = {"rpccore": "#1f5fa8", "oslo.messaging": "#d9822b", "raw kombu": "#3a9a4a",
          "raw pyzmq": "#c23b3b", "raw proton": "#7b4fb0", "bare queue+thread": "#6e6e6e"}


def _color(impl: str) -> str:
    return COLORS.get(impl, "#999999")


def _impls(rows: Sequence[Row]) -> list[str]:
    names = ["rpccore"]
    for row in rows:
        for peer in row.peers:
            if peer.impl not in names:
                names.append(peer.impl)
    return names


def draw(rows: Sequence[Row], path: Path, title: str = "rpccore beside its peers") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    drivers = list(dict.fromkeys(r.driver for r in rows))
    heights = [max(2.4, 0.42 * _bars(rows, d)) for d in drivers]
    fig, axes = plt.subplots(len(drivers), 2, figsize=(17, sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights, "width_ratios": [1.15, 1]},
                             squeeze=False)
    for (left, right), driver in zip(axes, drivers, strict=True):
        mine = [r for r in rows if r.driver == driver]
        _throughput(left, driver, mine)
        _latency(right, driver, [r for r in mine if r.rpccore.p50_ms is not None])
    impls = _impls(rows)
    total = sum(heights) + 1.6
    fig.suptitle(title, fontsize=14, y=1 - 0.15 / total)
    fig.legend(handles=[Patch(color=_color(i), label=i) for i in impls], loc="upper center",
               ncol=len(impls), fontsize=11, frameon=False, bbox_to_anchor=(0.5, 1 - 0.5 / total))
    fig.tight_layout(rect=(0, 0, 1, 1 - 1.0 / total))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _bars(rows: Sequence[Row], driver: str) -> int:
    return sum(1 + len(r.peers) for r in rows if r.driver == driver) + 1


def _row_axis(ax: object, ticks: list[float], labels: list[str]) -> None:
    """One label per scenario down the side, first on top; a log x scale."""
    ax.set_yticks(ticks, labels, fontsize=9.5)  # type: ignore[attr-defined]
    ax.invert_yaxis()  # type: ignore[attr-defined]
    ax.set_xscale("log")  # type: ignore[attr-defined]


def _throughput(ax: object, driver: str, rows: Sequence[Row]) -> None:
    y = 0.0
    ticks, labels = [], []
    for row in rows:
        figs = [row.rpccore, *row.peers]
        positions = [y + k for k in range(len(figs))]
        for pos, fig in zip(positions, figs, strict=True):
            ax.barh(pos, fig.rate, color=_color(fig.impl), height=0.85)  # type: ignore[attr-defined]
            text = f"{fig.rate:,.0f}"
            if fig is row.rpccore and row.peers:
                ratio = row.ratio(row.peers[0].impl)
                if ratio is not None:
                    text += f"  ({ratio:.2f}x {row.peers[0].impl})"
            ax.text(fig.rate * 1.08, pos, text, va="center", fontsize=8.5)  # type: ignore[attr-defined]
        ticks.append(sum(positions) / len(positions))
        labels.append(textwrap.fill(row.label, 24))
        y += len(figs) + 0.8
    _row_axis(ax, ticks, labels)
    right = max((f.rate for r in rows for f in [r.rpccore, *r.peers]), default=1.0)
    ax.set_xlim(left=max(1.0, min((f.rate for r in rows for f in [r.rpccore, *r.peers]  # type: ignore[attr-defined]
                                   if f.rate > 0), default=1.0) / 3), right=right * 15)
    ax.set_title(f"{driver}: throughput, messages or calls per second (log scale)",  # type: ignore[attr-defined]
                 fontsize=11, loc="left")
    ax.set_axisbelow(True)  # type: ignore[attr-defined]
    ax.grid(axis="x", alpha=0.35)  # type: ignore[attr-defined]


def _latency(ax: object, driver: str, rows: Sequence[Row]) -> None:
    if not rows:
        ax.set_axis_off()  # type: ignore[attr-defined]
        return
    y = 0.0
    ticks, labels = [], []
    for row in rows:
        figs: list[Figures] = [f for f in [row.rpccore, *row.peers] if f.p50_ms is not None]
        positions = [y + k for k in range(len(figs))]
        for pos, fig in zip(positions, figs, strict=True):
            color = _color(fig.impl)
            ax.barh(pos, fig.p99_ms, color=color, alpha=0.3, height=0.85)  # type: ignore[attr-defined]
            ax.barh(pos, fig.p50_ms, color=color, height=0.85)  # type: ignore[attr-defined]
            ax.plot([fig.p999_ms], [pos], marker="|", markersize=13, color=color)  # type: ignore[attr-defined]
            ax.text((fig.p999_ms or 0) * 1.15, pos,  # type: ignore[attr-defined]
                    f"{fig.p50_ms:.2f} / {fig.p99_ms:.2f} / {fig.p999_ms:.2f}", va="center",
                    fontsize=8.5)
        ticks.append(sum(positions) / len(positions))
        labels.append(textwrap.fill(row.label, 24))
        y += len(figs) + 0.8
    _row_axis(ax, ticks, labels)
    hi = max(f.p999_ms or 0 for r in rows for f in [r.rpccore, *r.peers])
    lo = min(f.p50_ms for r in rows for f in [r.rpccore, *r.peers] if f.p50_ms)
    ax.set_xlim(lo / 2, hi * 12)  # type: ignore[attr-defined]
    ax.set_title(f"{driver}: call latency, ms (log): bar p50, pale bar p99, tick p99.9",  # type: ignore[attr-defined]
                 fontsize=11, loc="left")
    ax.set_axisbelow(True)  # type: ignore[attr-defined]
    ax.grid(axis="x", alpha=0.35)  # type: ignore[attr-defined]
