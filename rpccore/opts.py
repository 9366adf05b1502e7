"""Configuration options of the core, and the sample-config hook.

``[rpccore]`` holds ``default_cell`` and ``cells``; every cell's options live
in the group ``[cell:NAME]``. Drivers and matchmakers add their own options to
the cell's group through their ``options()`` classmethod when a cell loads
them. :func:`list_opts` is the ``oslo.config.opts`` entry point, so
``oslo-config-generator --namespace rpccore`` writes a sample covering the core
and every installed plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from oslo_config import cfg

LOG = logging.getLogger(__name__)

CORE_GROUP = "rpccore"
DEFAULT_CELL = "default"
DEFAULT_TRANSPORT_URL = "memory://"

core_opts: list[cfg.Opt] = [
    cfg.StrOpt("default_cell", default=DEFAULT_CELL,
               help="Cell used when a destination names none."),
    cfg.ListOpt("cells", default=[],
                help="Every cell this process may talk to; each has a [cell:NAME] "
                     "section. Empty: the [cell:*] sections of the config files, or "
                     "else one cell 'default' on the in-process memory driver."),
    cfg.BoolOpt("opentelemetry", default=True,
                help="Trace and measure calls, casts and servers with OpenTelemetry "
                     "(the global tracer and meter providers) when opentelemetry-api is "
                     "installed (pip install rpccore[otel]). Without it nothing is "
                     "imported, whatever this says."),
    cfg.StrOpt("notification_cell",
               help="Cell that notifiers and listeners use when they name none "
                    "(unset: default_cell), so notifications can go to a broker "
                    "of their own."),
]

cell_opts: list[cfg.Opt] = [
    cfg.StrOpt("transport_url", default=DEFAULT_TRANSPORT_URL, secret=True,
               help="SCHEME://[user:pass@]host[:port][,host2...]/[vhost][?opt=value]. "
                    "The scheme names the driver (memory, rabbit, qpid, zmq); "
                    "query parameters override same-named options of this cell."),
    cfg.StrOpt("control_exchange", default="rpccore",
               help="Namespace (exchange) that this cell's topics live in."),
    cfg.FloatOpt("rpc_response_timeout", default=60.0, min=0.001,
                 help="Seconds a call waits for its reply when the caller gives "
                      "no timeout."),
    cfg.StrOpt("secret_key", secret=True,
               help="When set, every envelope of this cell is HMAC-SHA256 signed; "
                    "unsigned, tampered or replayed envelopes are dropped."),
    cfg.IntOpt("max_message_size", default=1024 * 1024, min=256,
               help="Largest encoded envelope, in bytes, sent or accepted."),
    cfg.FloatOpt("signed_message_ttl", default=300.0, min=1.0,
                 help="With secret_key: seconds a signed cast stays valid (calls "
                      "use their own timeout). Older or repeated envelopes are "
                      "refused as replays."),
    cfg.IntOpt("server_workers", default=16, min=1,
               help="Threads per server that run endpoint methods."),
    cfg.IntOpt("server_queue_size", default=256, min=1,
               help="Requests a server holds waiting for a worker. In-process "
                    "senders wait when it is full; network drivers limit "
                    "unacknowledged deliveries to it."),
    cfg.IntOpt("stream_window", default=256, min=1,
               help="Items of a streamed reply a server may send ahead of what the "
                    "caller has consumed (the caller sends credit as it reads). "
                    "A stream's rate is at most this many items per round trip "
                    "of its credit; lower it for large items."),
    cfg.FloatOpt("version_discovery_window", default=0.5, min=0.01,
                 help="Seconds a client with version_cap='auto' gathers the "
                      "versions that the topic's servers announce."),
    cfg.FloatOpt("version_cap_cache_seconds", default=60.0, min=0.0,
                 help="Seconds an automatic version cap is reused before it is "
                      "discovered again (in the background)."),
    cfg.IntOpt("notification_max_queue_length", default=100_000, min=1,
               help="Notifications a broker keeps for one listener pool while it "
                    "does not keep up or is down; what overflows is dropped, counted "
                    "(notifications_dropped) and logged."),
    cfg.FloatOpt("notification_ttl", default=86_400.0, min=1.0,
                 help="Seconds a broker keeps a notification for a listener pool "
                      "before dropping it."),
]


#: TLS options shared by the broker drivers, so that a cell is configured for
#: TLS the same way whichever AMQP driver it uses.
tls_opts: list[cfg.Opt] = [
    cfg.BoolOpt("ssl", default=False,
                help="Connect to the broker over TLS (the URL's default port becomes "
                     "5671)."),
    cfg.StrOpt("ssl_ca_file",
               help="PEM file of the CA certificates the broker's certificate must "
                    "chain to (unset: the system's default CAs)."),
    cfg.StrOpt("ssl_cert_file", help="PEM client certificate, for brokers that ask for one."),
    cfg.StrOpt("ssl_key_file", help="PEM private key of ssl_cert_file."),
    cfg.BoolOpt("ssl_verify_hostname", default=True,
                help="Check that the broker's certificate names the host connected to."),
]


def cell_group(name: str) -> str:
    """The option group name of cell ``name``."""
    return f"cell:{name}"


def register_core_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(core_opts, group=CORE_GROUP)


def register_cell_opts(conf: cfg.ConfigOpts, name: str) -> None:
    conf.register_opts(cell_opts, group=cell_group(name))


def register_plugin_opts(conf: cfg.ConfigOpts, group: str, opts: Iterable[cfg.Opt]) -> None:
    """Register a plugin's options in a cell group; a second registration of
    the same option is a no-op (oslo.config compares definitions)."""
    for opt in opts:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            LOG.warning("option %s of group [%s] is defined twice with different "
                        "definitions; keeping the first", opt.name, group)


def _plugin_opts() -> list[cfg.Opt]:
    from rpccore import plugins  # late: importing plugins is only needed here

    seen = {opt.name for opt in cell_opts}
    merged: list[cfg.Opt] = []
    for cls in plugins.installed_plugin_classes():
        for opt in cls.options():
            if opt.name not in seen:
                seen.add(opt.name)
                merged.append(opt)
    return merged


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Every option of the core and of every installed plugin.

    The cell options are listed under ``[cell:name]``: copy that section once
    per cell.
    """
    return [(CORE_GROUP, list(core_opts)),
            ("cell:name", list(cell_opts) + _plugin_opts())]
