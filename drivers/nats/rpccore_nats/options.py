"""Options of the nats driver and the connection settings built from them.

Every option lives in the cell's group (``[cell:NAME]``); a query parameter
of the transport URL with the same name overrides it
(``nats://h1:4222,h2:4222?ssl=true``). Secrets (``nats_token``,
``nats_nkey_seed``, passwords in the URL) are marked ``secret`` so that
oslo.config masks them, and never appear in the driver's logs.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from rpccore.driverkit import HostPort
from rpccore.errors import ConfigError
from rpccore.opts import tls_opts

DEFAULT_PORT = 4222

nats_opts: list[cfg.Opt] = [
    *tls_opts,
    cfg.StrOpt("nats_token", secret=True,
               help="Authentication token, for servers configured with one."),
    cfg.StrOpt("nats_nkey_seed", secret=True,
               help="NKEY user seed (SU...), for servers that authenticate by NKEY."),
    cfg.StrOpt("nats_nkey_seed_file",
               help="File holding the NKEY user seed (instead of nats_nkey_seed)."),
    cfg.StrOpt("nats_creds_file",
               help="Credentials file (user JWT and NKEY seed), for servers in "
                    "operator/JWT mode."),
    cfg.FloatOpt("nats_connect_timeout", default=2.0, min=0.1,
                 help="Seconds one connection attempt may take."),
    cfg.FloatOpt("nats_reconnect_wait", default=0.5, min=0.0,
                 help="Seconds between two rounds of connection attempts over the "
                      "URL's servers (the first round after a loss starts at once)."),
    cfg.FloatOpt("nats_reconnect_jitter", default=0.1, min=0.0,
                 help="Up to this many seconds are added at random to each wait "
                      "between attempts, so that many clients do not reconnect in step."),
    cfg.BoolOpt("nats_randomize_servers", default=True,
                help="Try the URL's servers in random order (spreads clients over a "
                     "cluster); false: in the URL's order."),
    cfg.FloatOpt("nats_ping_interval", default=10.0, min=1.0,
                 help="Seconds between the client's pings; a server silent for two "
                      "of them is taken as lost and the driver reconnects."),
    cfg.FloatOpt("nats_drain_timeout", default=5.0, min=0.1,
                 help="Seconds closing a driver waits for in-flight messages to be "
                      "handed over and sent (NATS drain)."),
    cfg.IntOpt("nats_stream_replicas", default=1, min=1, max=5,
               help="Replicas of the JetStream streams the driver creates (3 on a "
                    "cluster, so that confirmed casts and notifications survive the "
                    "loss of a server)."),
    cfg.IntOpt("nats_cast_streams", min=1, max=5,
               help="Work-queue streams confirmed casts are spread over (default: 1 "
                    "with nats_stream_replicas = 1, 2 with more). Above 1, a sender "
                    "whose stream has no leader (its node died, JetStream is electing "
                    "a new one: seconds) stores its confirmed casts in the next stream "
                    "at once, and servers keep the streams' leaders on different "
                    "nodes; servers consume every stream, and must use at least as "
                    "many as senders."),
    cfg.FloatOpt("nats_ack_wait", default=30.0, min=0.5,
                 help="Seconds JetStream waits for a confirmed cast or a notification "
                      "to be acknowledged before delivering it again (a server that "
                      "died while running it); the driver extends it while the "
                      "endpoint still runs."),
    cfg.BoolOpt("nats_file_storage", default=True,
                help="Keep JetStream streams on disk (false: in the server's memory)."),
]


@dataclass(frozen=True)
class ConnectParams:
    """What the connection needs, resolved from options and URL."""

    servers: tuple[str, ...]
    #: the servers as they may be logged (they hold no credentials)
    servers_for_logs: tuple[str, ...]
    connect_kwargs: dict[str, Any] = field(repr=False)
    reconnect_wait: float
    reconnect_jitter: float
    drain_timeout: float
    replicas: int
    ack_wait: float
    file_storage: bool
    #: work-queue streams of confirmed casts (1: no standby)
    cast_streams: int = 1


def _tls_context(options: Any) -> ssl.SSLContext | None:
    if not options.ssl:
        return None
    context = ssl.create_default_context(cafile=options.ssl_ca_file or None)
    if options.ssl_cert_file:
        context.load_cert_chain(options.ssl_cert_file, options.ssl_key_file or None)
    elif options.ssl_key_file:
        raise ConfigError("ssl_key_file is set but ssl_cert_file is not")
    context.check_hostname = bool(options.ssl_verify_hostname)
    return context


#: What nats-py looks for in a creds file: the line after each marker.
_CREDS_BLOCKS = ((b"BEGIN NATS USER JWT", b"eyJ", "a user JWT"),
                 (b"BEGIN USER NKEY SEED", b"SU", "an NKEY user seed"))


def _check_creds_file(path: str) -> None:
    """Check a creds file as nats-py will read it, on every connection.

    nats-py loops forever (on the driver's event loop) reading a file
    without a user JWT block, and takes a CR for part of the JWT and seed:
    such files would never connect, with an obscure error or none. Messages
    name the file, never its contents.

    :raises ConfigError: missing, unreadable or malformed.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"nats_creds_file {path!r} does not exist")
    try:
        with open(path, "rb") as file:
            lines = file.read().split(b"\n")
    except OSError as exc:
        raise ConfigError(f"nats_creds_file {path!r} cannot be read: {exc.strerror}") from None
    if any(line.endswith(b"\r") for line in lines):
        raise ConfigError(f"nats_creds_file {path!r} has CRLF line ends: NATS clients read "
                          "creds files with LF line ends only")
    for marker, start, what in _CREDS_BLOCKS:
        index = next((i for i, line in enumerate(lines) if marker in line), len(lines))
        if not lines[index + 1:index + 2] or not lines[index + 1].startswith(start):
            raise ConfigError(f"nats_creds_file {path!r} is not a NATS credentials file: "
                              f"no {what} after a {marker.decode()} line")


def _auth(options: Any) -> dict[str, Any]:
    """nats-py keywords for token, NKEY and creds authentication."""
    kwargs: dict[str, Any] = {}
    if options.nats_token:
        kwargs["token"] = options.nats_token
    if options.nats_nkey_seed and options.nats_nkey_seed_file:
        raise ConfigError("set nats_nkey_seed or nats_nkey_seed_file, not both")
    if options.nats_nkey_seed:
        kwargs["nkeys_seed_str"] = options.nats_nkey_seed
    elif options.nats_nkey_seed_file:
        if not os.path.isfile(options.nats_nkey_seed_file):
            raise ConfigError(f"nats_nkey_seed_file {options.nats_nkey_seed_file!r} "
                              "does not exist")
        kwargs["nkeys_seed"] = options.nats_nkey_seed_file
    if options.nats_creds_file:
        if options.nats_nkey_seed or options.nats_nkey_seed_file:
            raise ConfigError("set nats_creds_file or an NKEY seed, not both (the creds "
                              "file holds the user's seed)")
        _check_creds_file(options.nats_creds_file)
        kwargs["user_credentials"] = options.nats_creds_file
    if ("nkeys_seed_str" in kwargs or "nkeys_seed" in kwargs
            or "user_credentials" in kwargs):
        try:
            import nkeys  # noqa: F401  (nats-py signs with it)
        except ImportError:
            raise ConfigError("NKEY and creds authentication need the 'nkeys' package "
                              "(pip install nkeys)") from None
    return kwargs


def _user_password(hosts: Any) -> dict[str, Any]:
    """The URL's user and password, for every server (nats-py would take
    them from the server URLs undecoded, so they are passed apart)."""
    found = {(host.username, host.password) for host in hosts if host.username is not None}
    if len(found) > 1:
        raise ConfigError("every host of a nats transport_url must name the same user "
                          "and password (or none)")
    if not found:
        return {}
    user, password = found.pop()
    return {"user": user, "password": password} if password is not None else {"user": user}


def connect_params(cell: Any) -> ConnectParams:
    """Resolve a cell's options and URL.

    :raises ConfigError: inconsistent TLS or authentication options.
    """
    options = cell.options
    scheme = "tls" if options.ssl else "nats"
    servers = []
    # the URL's hosts were parsed by rpccore.driverkit.parse_host_port
    # (rpccore.transport_url); HostPort puts an IPv6 address in brackets
    for host in cell.url.hosts or ():
        servers.append(f"{scheme}://{HostPort(host.hostname, host.port or DEFAULT_PORT)}")
    if not servers:
        servers = [f"{scheme}://127.0.0.1:{DEFAULT_PORT}"]
    kwargs: dict[str, Any] = {
        "connect_timeout": options.nats_connect_timeout,
        "ping_interval": options.nats_ping_interval,
        "max_outstanding_pings": 2,
        "max_reconnect_attempts": -1,  # forever: senders give up at their deadlines
        "reconnect_time_wait": options.nats_reconnect_wait,  # first connection's retries
        "dont_randomize": not options.nats_randomize_servers,
        "drain_timeout": options.nats_drain_timeout,
        # Every subject the driver publishes to is built by rpccore_nats.naming
        # (no whitespace, CR or LF) or is a reply subject the server sent us.
        "skip_subject_validation": True,
        **_auth(options),
        **_user_password(cell.url.hosts or ()),
    }
    tls = _tls_context(options)
    if tls is not None:
        kwargs["tls"] = tls
    return ConnectParams(
        servers=tuple(servers), servers_for_logs=tuple(servers), connect_kwargs=kwargs,
        reconnect_wait=options.nats_reconnect_wait,
        reconnect_jitter=options.nats_reconnect_jitter,
        drain_timeout=options.nats_drain_timeout,
        replicas=options.nats_stream_replicas, ack_wait=options.nats_ack_wait,
        file_storage=options.nats_file_storage, cast_streams=_cast_streams(options))


def _cast_streams(options: Any) -> int:
    """``nats_cast_streams``, or its default: a standby stream wherever
    streams have replicas on other nodes to fail over to."""
    if options.nats_cast_streams is not None:
        return int(options.nats_cast_streams)
    return 1 if options.nats_stream_replicas == 1 else 2
