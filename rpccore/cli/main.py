"""``rpccore``: plugins, check, call, cast, ping and demo from the shell."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpccore import plugins
from rpccore.errors import RPCError
from rpccore.rpc import RPC


def load_conf(config_files: Sequence[str] | None) -> cfg.ConfigOpts:
    """An oslo.config object reading ``config_files`` (none: defaults only)."""
    conf = cfg.ConfigOpts()
    args: list[str] = []
    for path in config_files or ():
        args += ["--config-file", path]
    try:
        conf(args=args, project="rpccore", default_config_files=[])
    except cfg.Error as exc:
        raise SystemExit(f"rpccore: configuration error: {exc}") from None
    return conf


def _cmd_plugins(_args: argparse.Namespace) -> int:
    found = plugins.list_plugins()
    rows = [("KIND", "NAME", "DISTRIBUTION", "VERSION", "TARGET")]
    for p in found:
        kind = "driver" if p.namespace == plugins.DRIVER_NAMESPACE else "matchmaker"
        target = p.target if p.error is None else f"BROKEN: {p.error}"
        rows.append((kind, p.name, p.distribution, p.version, target))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        cells = [text.ljust(width) for text, width in zip(row[:4], widths, strict=True)]
        print("  ".join(cells) + "  " + row[4])
    missing = sorted({dist for (ns, name), dist in plugins.KNOWN_DISTRIBUTIONS.items()
                      if not any(p.namespace == ns and p.name == name for p in found)})
    if missing:
        print("\nnot installed: " + ", ".join(missing) + " (pip install NAME)")
    return 0


def _send(args: argparse.Namespace, kind: str) -> int:
    try:
        call_args = json.loads(args.args) if args.args else {}
    except ValueError as exc:
        print(f"rpccore: ARGS is not JSON: {exc}", file=sys.stderr)
        return 2
    try:
        ctx = json.loads(args.context) if args.context else {}
    except ValueError as exc:
        print(f"rpccore: --context is not JSON: {exc}", file=sys.stderr)
        return 2
    with RPC(load_conf(args.config_file)) as rpc:
        try:
            dest = rpc.make_destination(args.topic, host=args.host, cell=args.cell,
                                        fanout=getattr(args, "fanout", False))
            message = {"method": args.method, "args": call_args}
            if kind == "call":
                result: Any = rpc.call(ctx, dest, message, timeout=args.timeout)
                print(json.dumps(result, indent=2, ensure_ascii=False))
            else:
                rpc.cast(ctx, dest, message, confirm=args.confirm)
                print(f"cast {args.method} to {dest}")
        except RPCError as exc:
            print(f"rpccore: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    return 0


def _ping(args: argparse.Namespace) -> int:
    """``rpccore ping TOPIC [--host H] [--cell C] [--all]``: what the server
    (with ``--all``: every server of the topic) says about itself."""
    with RPC(load_conf(args.config_file)) as rpc:
        try:
            dest = rpc.make_destination(args.topic, host=args.host, cell=args.cell,
                                        fanout=args.all)
            answer: Any = rpc.ping(dest, timeout=args.timeout)
        except RPCError as exc:
            print(f"rpccore: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    if args.all:
        if not answer:
            print(f"rpccore: no server of {dest} answered within {args.timeout:g} s",
                  file=sys.stderr)
            return 1
        answer = [info for _, info in answer]
    print(json.dumps(answer, indent=2, ensure_ascii=False, sort_keys=True))
    return 0


def _add_send_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("topic")
    sub.add_argument("method")
    sub.add_argument("args", nargs="?", help="JSON object of arguments (default {})")
    sub.add_argument("--host")
    sub.add_argument("--cell")
    sub.add_argument("--context", help="JSON object sent as the request context")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpccore", description=__doc__)
    config_help = "oslo.config file with [rpccore] and [cell:NAME] sections (repeatable)"
    parser.add_argument("--config-file", action="append", metavar="FILE", help=config_help)
    # The same option after the subcommand (rpccore check --config-file F).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config-file", action="append", metavar="FILE", help=config_help,
                        dest="config_file_after")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subs = parser.add_subparsers(dest="command", required=True)

    subs.add_parser("plugins", help="list installed drivers and matchmakers")

    check = subs.add_parser("check", parents=[common], help="load, connect and test every cell")
    check.add_argument("--cell", action="append", help="only this cell (repeatable)")
    check.add_argument("--timeout", type=float, default=5.0)
    check.add_argument("--stats", action="store_true", help="also print per-cell counters")
    check.add_argument("--topic", action="append", default=[],
                       help="also ping every server of this topic in each cell, and "
                            "report what each says of itself (repeatable)")
    check.add_argument("--connect-only", action="store_true",
                       help="skip the round-trip call (on a machine whose zmq servers "
                            "already hold the cell's port)")

    call = subs.add_parser("call", parents=[common],
                           help="call TOPIC METHOD with JSON ARGS, print the result")
    _add_send_args(call)
    call.add_argument("--timeout", type=float, default=None)

    cast = subs.add_parser("cast", parents=[common], help="cast TOPIC METHOD with JSON ARGS")
    _add_send_args(cast)
    cast.add_argument("--fanout", action="store_true")
    cast.add_argument("--confirm", action="store_true",
                      help="wait until the backend has taken the message")

    ping = subs.add_parser("ping", parents=[common],
                           help="ask a server of TOPIC about itself (host, pid, versions, "
                                "uptime)")
    ping.add_argument("topic")
    ping.add_argument("--host")
    ping.add_argument("--cell")
    ping.add_argument("--all", action="store_true",
                      help="every server of the topic (a fanout ping, gathered for "
                           "--timeout seconds)")
    ping.add_argument("--timeout", type=float, default=5.0)

    demo = subs.add_parser("demo", parents=[common],
                           help="servers and a client on every brokerless driver")
    demo.add_argument("--driver", action="append",
                      help="only this driver (memory, zmq, nats); default: every "
                           "installed brokerless one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config_file = (args.config_file or []) + (getattr(args, "config_file_after", None) or [])
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "plugins":
        return _cmd_plugins(args)
    if args.command == "check":
        from rpccore.cli.check import run_check
        return run_check(load_conf(args.config_file), args.cell, args.timeout, args.stats,
                         not args.connect_only, args.topic)
    if args.command == "ping":
        return _ping(args)
    if args.command in ("call", "cast"):
        return _send(args, args.command)
    from rpccore.cli.demo import run_demo
    return run_demo(args.driver)


if __name__ == "__main__":
    sys.exit(main())
