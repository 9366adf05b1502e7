"""``rpccore check``: load, connect and round-trip every cell, in words an
operator can act on; what the probe server says of itself (``ping``), and
with ``--topic``, every server of the application's topics."""

from __future__ import annotations

import configparser
import re
import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpccore import plugins
from rpccore.cell import Cell
from rpccore.errors import RPCError
from rpccore.rpc import RPC

#: (pattern in an error message, what the operator should do)
HINTS: list[tuple[str, str]] = [
    (r"ACCESS_REFUSED|authenticat|credentials|unauthorized|SASL|sasl|password",
     "the server refused the credentials: check user and password in transport_url"),
    (r"[Cc]onnection refused|ECONNREFUSED|Errno 111|unreachable",
     "nothing accepts connections there: start the broker (or Redis), or fix host and "
     "port in the URL"),
    (r"[Aa]ddress already in use|EADDRINUSE",
     "the port is in use by another process (a server of this cell on this machine?): "
     "run check with --connect-only here, or set another zmq_port"),
    (r"inequivalent arg 'x-queue-type'|exists with x-queue-type",
     "the queue exists with another queue type: to keep it, set rabbit_queue_type to the "
     "queue's type in every process of the cell; to change it, stop every server of its "
     "topic, delete the queue (rabbitmqctl delete_queue NAME; what it holds is lost) and "
     "start them with the new rabbit_queue_type"),
    (r"PRECONDITION_FAILED|inequivalent arg|exists with \S+ = ",
     "a queue or exchange already exists with other settings (often amqp_durable_queues "
     "changed, or another application uses the same control_exchange): use the same "
     "settings everywhere, or delete the old one with rabbitmqctl"),
    (r"timed out|[Tt]imeout",
     "no answer in time: check that the host is reachable and that a firewall does not "
     "drop the port"),
    (r"[Nn]ame or service not known|getaddrinfo|resolve",
     "the host name does not resolve: fix the host in transport_url"),
    (r"vhost|NOT_ALLOWED|virtual host",
     "the virtual host does not exist or the user may not use it: create it or fix the "
     "path of transport_url"),
    (r"CERTIFICATE|certificate|SSL|TLS",
     "TLS failed: check ssl_ca_file matches the server's certificate authority"),
]


def hint_for(message: str) -> str | None:
    for pattern, hint in HINTS:
        if re.search(pattern, message):
            return hint
    return None


class _Ping:
    def ping(self, ctx: dict[str, object]) -> str:
        return "pong"


def _dist(namespace: str, name: str) -> str:
    for info in plugins.list_plugins():
        if info.namespace == namespace and info.name == name:
            return f"{info.distribution} {info.version}"
    return "not installed"


def _report_failure(step: str, exc: BaseException) -> None:
    text = str(exc) or type(exc).__name__
    print(f"  {step}: FAILED: {type(exc).__name__}: {text}")
    hint = hint_for(text)
    if hint:
        print(f"    what to do: {hint}")


def unknown_options(cell: Cell) -> list[str]:
    """Keys of the cell's section in the config files that no loaded plugin
    registered: oslo.config ignores them silently, so point them out."""
    files = getattr(cell.conf, "config_file", None) or []
    found: set[str] = set()
    for path in files:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_section(cell.group):
            # options() also lists [DEFAULT]'s keys: those are not the cell's
            found.update(set(parser.options(cell.group)) - set(parser.defaults()))
    return sorted(name for name in found if name not in cell.options)


def check_cell(rpc: RPC, name: str, timeout: float, round_trip: bool = True) -> bool:
    """Print the state of one cell; True when every step passed."""
    print(f"cell {name}:")
    try:
        cell = rpc.cell(name)
        print(f"  transport: {cell.url}")
        print(f"  driver: {cell.driver_name} ({_dist(plugins.DRIVER_NAMESPACE, cell.driver_name)})")
        driver = cell.driver()
    except (RPCError, cfg.Error) as exc:
        _report_failure("load", exc)
        return False
    if not _check_matchmaker(cell):
        return False
    unknown = unknown_options(cell)
    if unknown:
        print(f"  WARNING: options in [{cell.group}] that nothing uses (typos?): "
              + ", ".join(unknown))
    start = time.monotonic()
    try:
        driver.connect(timeout)
    except Exception as exc:  # any driver failure is reported, not raised
        _report_failure("connect", exc)
        return False
    print(f"  connect: OK ({(time.monotonic() - start) * 1000:.0f} ms)")
    return _check_round_trip(rpc, name, driver.local_host(), timeout) if round_trip else True


def _check_matchmaker(cell: Cell) -> bool:
    """Look the probe topic up in the cell's matchmaker, if it has one."""
    matchmaker = getattr(cell.options, "matchmaker", None) if "matchmaker" in cell.options \
        else None
    if not matchmaker:
        return True
    print(f"  matchmaker: {matchmaker} ({_dist(plugins.MATCHMAKER_NAMESPACE, matchmaker)})")
    try:
        built = cell.load_matchmaker(matchmaker)
        try:
            # a real look-up: an unreachable registry fails here
            hosts = built.lookup("rpccore-check")
        finally:
            built.close()
    except Exception as exc:  # reported, not raised
        _report_failure("matchmaker look-up", exc)
        return False
    print(f"  matchmaker look-up: OK ({len(hosts)} hosts for the probe topic)")
    return True


def _check_round_trip(rpc: RPC, name: str, local_host: str | None, timeout: float) -> bool:
    """Serve a probe, call it and ping it."""
    # A fixed topic, so that brokers with durable queues keep one probe queue
    # rather than one per check; host-directed, so that the round trip needs
    # no matchmaker entry.
    dest = rpc.make_destination("rpccore-check", host=local_host or "rpccore-check", cell=name)
    server = None
    try:
        server = rpc.serve(dest, [_Ping()]).start()
        start = time.monotonic()
        answer = rpc.call({}, dest, {"method": "ping", "args": {}}, timeout=timeout)
        elapsed = (time.monotonic() - start) * 1000
        if answer != "pong":
            print(f"  round trip: FAILED: answered {answer!r}")
            return False
        print(f"  round trip call: OK ({elapsed:.1f} ms)")
        start = time.monotonic()
        info = rpc.ping(dest, timeout=timeout)
        print(f"  server side (ping): {describe_server(info)} "
              f"({(time.monotonic() - start) * 1000:.1f} ms)")
    except Exception as exc:  # reported, not raised
        _report_failure("round trip call", exc)
        return False
    finally:
        if server is not None:
            server.stop()
    return True


def describe_server(info: dict[str, Any]) -> str:
    """One line of what a server says of itself (``rpc.ping``)."""
    versions = ", ".join(f"{ns or '(none)'} {v}" for ns, v in sorted(
        (info.get("versions") or {}).items())) or "none"
    return (f"host {info.get('host')}, pid {info.get('pid')}, "
            f"{info.get('workers')} workers, up {info.get('uptime', 0):.0f} s, "
            f"versions: {versions}")


def ping_topics(rpc: RPC, name: str, topics: Sequence[str], timeout: float) -> bool:
    """Ping every server of each of ``topics`` in cell ``name`` (a fanout
    ping, gathered for ``timeout`` seconds); True when each has one."""
    ok = True
    for topic in topics:
        try:
            answers = rpc.ping(rpc.make_destination(topic, cell=name, fanout=True),
                               timeout=timeout)
        except Exception as exc:  # reported, not raised
            _report_failure(f"servers of {topic!r}", exc)
            ok = False
            continue
        if not answers:
            print(f"  servers of {topic!r}: NONE answered a ping within {timeout:g} s "
                  f"(none running, or not reachable from here)")
            ok = False
            continue
        print(f"  servers of {topic!r}: {len(answers)} answered")
        for _, info in sorted(answers, key=lambda pair: str(pair[0])):
            print(f"    {describe_server(info)}")
    return ok


def run_check(conf: cfg.ConfigOpts, cells: Sequence[str] | None, timeout: float,
              show_stats: bool, round_trip: bool = True,
              topics: Sequence[str] = ()) -> int:
    if not getattr(conf, "config_file", None):
        print("no --config-file given: checking the built-in default (one in-process "
              "memory cell)\n")
    rpc = RPC(conf)
    try:
        names = list(cells) if cells else rpc.cell_names
        results = []
        for name in names:
            ok = check_cell(rpc, name, timeout, round_trip)
            if ok and topics:
                ok = ping_topics(rpc, name, topics, timeout)
            results.append(ok)
        if show_stats:
            for name, counters in rpc.stats().items():
                print(f"stats of cell {name}: " + ", ".join(
                    f"{k}={v}" for k, v in counters.items() if v))
    finally:
        rpc.close()
    failed = results.count(False)
    print(f"\n{len(results) - failed} of {len(results)} cells OK")
    return 1 if failed else 0
