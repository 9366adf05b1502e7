"""``rpccore check``: load, connect and round-trip every cell, in words an
operator can act on."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from oslo_config import cfg

from rpccore import plugins
from rpccore.errors import ConfigError, RPCError
from rpccore.rpc import RPC

#: (pattern in an error message, what the operator should do)
HINTS: list[tuple[str, str]] = [
    (r"ACCESS_REFUSED|authenticat|credentials|unauthorized|SASL|sasl|password",
     "the server refused the credentials: check user and password in transport_url"),
    (r"[Cc]onnection refused|ECONNREFUSED|Errno 111|unreachable",
     "nothing accepts connections there: start the broker (or Redis), or fix host and "
     "port in the URL"),
    (r"[Aa]ddress already in use|EADDRINUSE",
     "the port is in use by another process: stop it or set another port (zmq_port)"),
    (r"PRECONDITION_FAILED|inequivalent arg",
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


def check_cell(rpc: RPC, name: str, timeout: float) -> bool:
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
    matchmaker = getattr(cell.options, "matchmaker", None) if "matchmaker" in cell.options \
        else None
    if matchmaker:
        print(f"  matchmaker: {matchmaker} ({_dist(plugins.MATCHMAKER_NAMESPACE, matchmaker)})")
        try:
            cell.load_matchmaker(matchmaker).close()
        except ConfigError as exc:
            _report_failure("matchmaker", exc)
            return False
    start = time.monotonic()
    try:
        driver.connect(timeout)
    except Exception as exc:  # any driver failure is reported, not raised
        _report_failure("connect", exc)
        return False
    print(f"  connect: OK ({(time.monotonic() - start) * 1000:.0f} ms)")
    # A fixed topic, so that brokers with durable queues keep one probe queue
    # rather than one per check; host-directed, so that the round trip needs
    # no matchmaker entry.
    topic = "rpccore-check"
    dest = rpc.make_destination(topic, host=driver.local_host() or "rpccore-check", cell=name)
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
    except Exception as exc:  # reported, not raised
        _report_failure("round trip call", exc)
        return False
    finally:
        if server is not None:
            server.stop()
    return True


def run_check(conf: cfg.ConfigOpts, cells: Sequence[str] | None, timeout: float,
              show_stats: bool) -> int:
    rpc = RPC(conf)
    try:
        names = list(cells) if cells else rpc.cell_names
        results = [check_cell(rpc, name, timeout) for name in names]
        if show_stats:
            for name, counters in rpc.stats().items():
                print(f"stats of cell {name}: " + ", ".join(
                    f"{k}={v}" for k, v in counters.items() if v))
    finally:
        rpc.close()
    failed = results.count(False)
    print(f"\n{len(results) - failed} of {len(results)} cells OK")
    return 1 if failed else 0
