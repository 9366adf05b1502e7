"""Benchmark output: terminal table, Markdown and reST tables, JSON round trip, progress bar.

Pure formatting on hand-made figures: nothing is timed here.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.suite import guard, output  # noqa: E402
from benchmarks.suite.model import Figures, Row, ScaleFigure  # noqa: E402
from benchmarks.suite.progress import Progress  # noqa: E402

ROWS = [
    Row("rabbit", "calls", "sequential calls", Figures("rpccore", 1200.0, 0.8, 2.5, 9.0, 3),
        [Figures("oslo.messaging", 400.0, 2.4, 7.0, 20.0, 3),
         Figures("raw kombu", 1500.0, 0.6, 2.0, 5.0, 3)], unit="calls/s", note="noisy"),
    Row("zmq", "casts", "casts, 1 thread", Figures("rpccore", 25000.0, repeats=3)),
]
SCALE = [ScaleFigure("zmq", 200, "memory per idle server", 152.7, "KiB")]


def test_table_prints_every_figure_with_its_ratio() -> None:
    text = output.table(ROWS)
    lines = text.splitlines()
    oslo = next(line for line in lines if "oslo.messaging" in line)
    kombu = next(line for line in lines if "raw kombu" in line)
    assert oslo.rstrip().endswith("3.00x")
    assert kombu.rstrip().endswith("0.80x")
    assert "1,200/s" in text and "25,000/s" in text
    assert "note: noisy" in text
    assert "0.800" in text and "2.500" in text and "9.000" in text  # p50, p99, p99.9


def test_markdown_has_one_line_per_peer_and_the_verdicts() -> None:
    verdicts = guard.judge(ROWS, targets=[guard.Target("rabbit", "calls", "oslo.messaging", 2)])
    text = output.markdown(ROWS, SCALE, verdicts)
    assert "| rabbit | sequential calls | 1,200 calls/s | 0.80 / 2.50 / 9.00 | oslo.messaging |" \
        in text
    assert "|  |  |  |  | raw kombu | 1,500 | 0.60 / 2.00 / 5.00 | 0.80x |" in text
    assert "| zmq | casts, 1 thread | 25,000 msg/s |  | (none) |" in text
    assert "| zmq | 200 | memory per idle server | 152.700 KiB |" in text
    assert "| rabbit calls >= 2x oslo.messaging | 3.00x: meets |" in text
    widths = {line.count("|") for line in text.split("\n\n")[0].splitlines()}
    assert widths == {9}  # every line of the main table has the same columns


def test_rst_list_table_is_well_formed() -> None:
    text = output.rst(ROWS)
    lines = text.splitlines()
    assert lines[:3] == [".. list-table::", "   :header-rows: 1", ""]
    starts = [line for line in lines if line.startswith("   * -")]
    assert len(starts) == 1 + 3  # header, two peers of rabbit, zmq without peer
    items = [line for line in lines[3:] if line.strip()]
    assert len(items) == 8 * len(starts)  # 8 cells on every line


def test_json_round_trip_keeps_rows_ratios_and_verdicts(tmp_path: Path) -> None:
    verdicts = guard.judge(ROWS, drivers=["zmq"])
    text = output.to_json(ROWS, SCALE, verdicts, {"mode": "quick"})
    data = json.loads(text)
    assert data["meta"] == {"mode": "quick"}
    assert data["rows"][0]["ratios"] == {"oslo.messaging": 3.0, "raw kombu": 0.8}
    statuses = {v["target"]: v["status"] for v in data["verdicts"]}
    assert statuses["zmq xproc-casts >= 20,000/s"] == "not measured"
    assert statuses["zmq xproc-calls >= 0.4x raw pyzmq"] == "not measured"
    [casts] = guard.judge(ROWS, targets=[guard.Target("zmq", "casts", "absolute", 20000)])
    assert casts.status == "meets"
    path = tmp_path / "r.json"
    path.write_text(text)
    rows, scale = output.load_rows(path)
    assert rows == ROWS
    assert scale == SCALE


def test_progress_bar_writes_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress(4, stream=stream, width=8)
    bar.step("one")
    bar.note("a log line")
    bar.step("two")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[##......] 1/4")
    assert lines[0].endswith("one")
    assert lines[1] == "a log line"
    assert lines[2].startswith("[####....] 2/4")
    bar.step()
    bar.step()
    bar.step()  # past the total: stays full
    assert stream.getvalue().splitlines()[-1].startswith("[########] 4/4")
