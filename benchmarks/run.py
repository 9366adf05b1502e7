"""The benchmark suite: rpccore against its peers, every installed driver, one run.

    python benchmarks/run.py [--quick] [--drivers memory,rabbit,qpid,zmq,nats]
                             [--out benchmarks/results] [--repeats 3] [--no-scale]
    python benchmarks/run.py --profile zmq:xproc-calls    # where the time goes
    python benchmarks/run.py --redraw benchmarks/results/latest.json

For each driver and scenario, rpccore (through its public API) and its peers
(oslo.messaging, raw kombu, raw pyzmq, raw proton, or a bare queue and
thread) run interleaved; the medians of the repeats are printed as a table
with every figure as a ratio to its peer, and written as JSON, Markdown and a
PNG chart. ``--quick`` runs only the guarded scenarios (under two minutes)
and exits non-zero when a figure falls below half its target, or when a
scenario fails. Importable: ``main(argv) -> exit code``. See
docs/performance.rst.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.suite import guard, output  # noqa: E402
from benchmarks.suite.model import Row, ScaleFigure  # noqa: E402
from benchmarks.suite.progress import Progress  # noqa: E402

DRIVERS = ("memory", "rabbit", "qpid", "zmq", "nats")


def installed_drivers() -> list[str]:
    """Drivers of :data:`DRIVERS` that have an entry point installed."""
    names = {ep.name for ep in metadata.entry_points(group="rpccore.drivers")}
    return [d for d in DRIVERS if d in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="only the guarded scenarios, fewer messages, no scale (CI)")
    parser.add_argument("--drivers", default=",".join(DRIVERS),
                        help="comma-separated drivers (default: every installed one)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                        help="folder for the JSON, Markdown and PNG results")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats (>= 3)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale scenarios")
    parser.add_argument("--no-chart", action="store_true", help="do not draw the PNG")
    parser.add_argument("--profile", metavar="DRIVER:SCENARIO",
                        help="only profile rpccore in one scenario (e.g. zmq:calls) with py-spy")
    parser.add_argument("--redraw", type=Path, metavar="JSON",
                        help="only redraw the chart and tables of a results file")
    args = parser.parse_args(argv)
    args.repeats = max(3, args.repeats)
    return args


def raise_fd_limit() -> None:
    """Many servers need many sockets: raise the soft RLIMIT_NOFILE to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                    else max(soft, 65536), hard))


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("rpccore", "kombu", "pyzmq", "python-qpid-proton", "oslo.messaging", "redis",
                 "nats-py"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the suite; returns the exit code (1: a scenario failed or the guard failed)."""
    args = parse_args(argv)
    if args.redraw:
        return redraw(args.redraw)
    if args.profile:
        from benchmarks.suite.profiling import profile
        driver, _, key = args.profile.partition(":")
        print(f"profile of rpccore, {driver} driver, scenario {key}:")
        print(profile(driver, key or "calls"))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise_fd_limit()
    available = installed_drivers()
    wanted = [d.strip() for d in args.drivers.split(",") if d.strip()]
    drivers = [d for d in wanted if d in available]
    started = time.monotonic()
    lines: list[str] = []
    rows, scale_figures, errors = measure(args, drivers, [d for d in wanted if d not in available],
                                          lines)
    verdicts = guard.judge(rows, drivers=drivers)
    elapsed = time.monotonic() - started
    print_report(rows, scale_figures, verdicts, errors)
    write_results(args, rows, scale_figures, verdicts, {
        "mode": "quick" if args.quick else "full", "repeats": args.repeats,
        "drivers": drivers, "seconds": round(elapsed, 1), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "versions": versions(),
        "log": lines, "errors": errors})
    print(f"ran in {elapsed:.0f} s; results in {args.out}")
    print(guard.summary(verdicts) + (f"; {len(errors)} scenario errors" if errors else ""),
          flush=True)
    return 1 if guard.failed(verdicts) or errors else 0


def measure(args: argparse.Namespace, drivers: list[str], missing: list[str],
            lines: list[str]) -> tuple[list[Row], list[ScaleFigure], list[str]]:
    """Run every selected scenario of ``drivers`` (and the scale steps of a
    full run); the log's lines go to ``lines``."""
    from benchmarks.suite import scenarios

    do_scale = not args.quick and not args.no_scale
    total = sum(len(scenarios.selected(d, args.quick)) for d in drivers)
    if do_scale:
        from benchmarks.suite import scale
        total += scale.steps(drivers)
    progress = Progress(total)

    def log(line: str) -> None:
        lines.append(line)
        progress.note(line)

    for name in missing:
        log(f"{name}: driver not installed, not measured")
    rows: list[Row] = []
    errors: list[str] = []
    for driver in drivers:
        run = scenarios.DriverRun(driver, args.quick, args.repeats, progress, log)
        run.run()
        rows += run.rows
        errors += run.errors
    scale_figures: list[ScaleFigure] = []
    if do_scale:
        scale_figures, scale_errors = scale.run(drivers, progress, log)
        errors += scale_errors
    progress.close()
    return rows, scale_figures, errors


def print_report(rows: list[Row], scale_figures: list[ScaleFigure], verdicts: list[Any],
                 errors: list[str]) -> None:
    print(output.table(rows))
    if scale_figures:
        print()
        for fig in scale_figures:
            print(f"{fig.driver:<7} {fig.servers:>4} servers  {fig.name:<36} "
                  f"{fig.value:>12,.3f} {fig.unit}  {fig.note}")
    print()
    for verdict in verdicts:
        print(verdict.line())
    for error in errors:
        print(f"error: {error}")


def chart_title(meta: dict[str, Any]) -> str:
    return (f"rpccore beside its peers ({meta.get('mode', '?')} run, {meta.get('date', '?')}, "
            f"median of {meta.get('repeats', '?')} interleaved repeats, "
            f"{meta.get('cpus', '?')} CPUs)")


def redraw(path: Path) -> int:
    """Redraw ``path``'s PNG (same name, .png) and print its table."""
    import json

    rows, scale_figures = output.load_rows(path)
    meta = json.loads(path.read_text()).get("meta", {})
    from benchmarks.suite.chart import draw
    draw(rows, path.with_suffix(".png"), title=chart_title(meta))
    print(output.table(rows))
    return 0


def write_results(args: argparse.Namespace, rows: list[Row], scale_figures: list[ScaleFigure],
                  verdicts: list[guard.Verdict], meta: dict[str, Any]) -> None:
    """``latest.*`` for a full run, ``quick.*`` for a quick one (JSON, Markdown, PNG)."""
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "quick" if args.quick else "latest"
    (args.out / f"{stem}.json").write_text(output.to_json(rows, scale_figures, verdicts, meta))
    head = (f"Measured {meta['date']}, {meta['mode']} mode, median of {meta['repeats']} "
            f"interleaved repeats, {meta['cpus']} CPUs.\n\n")
    (args.out / f"{stem}.md").write_text(head + output.markdown(rows, scale_figures, verdicts))
    if not args.no_chart and rows:
        try:
            from benchmarks.suite.chart import draw
            draw(rows, args.out / f"{stem}.png", title=chart_title(meta))
        except ImportError as exc:
            print(f"no chart: {exc} (pip install -r benchmarks/requirements.txt)")


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # driver threads of closed RPC objects must not delay the exit
