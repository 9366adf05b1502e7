"""Options of the rabbit driver, and the connection parameters built from
them and the cell's transport URL.

Every option lives in the cell's group (``[cell:NAME]``); a query parameter
of the transport URL with the same name overrides it
(``rabbit://h1,h2/?ssl=true&heartbeat_interval=5``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any

from oslo_config import cfg

from rpccore.errors import ConfigError
from rpccore.opts import tls_opts
from rpccore.transport_url import TransportHost

rabbit_opts: list[cfg.Opt] = [
    *tls_opts,
    cfg.IntOpt("heartbeat_interval", default=10, min=0,
               help="AMQP heartbeat in seconds asked of the broker; a broker silent for "
                    "about twice this long is taken as dead and the driver reconnects. "
                    "0 disables heartbeats."),
    cfg.FloatOpt("connect_timeout", default=3.0, min=0.1,
                 help="Seconds one connection attempt (TCP, TLS and AMQP handshake) may take."),
    cfg.FloatOpt("reconnect_interval", default=0.1, min=0.0,
                 help="Seconds to wait before the second connection attempt after a "
                      "failure. Every wait is jittered (half of it at random), and the "
                      "first attempt after a lost connection waits a random 0 to "
                      "reconnect_interval s, so that many processes losing the same "
                      "broker do not all reconnect in the same millisecond."),
    cfg.FloatOpt("reconnect_backoff", default=2.0, min=1.0,
                 help="Factor the wait between connection attempts grows by."),
    cfg.FloatOpt("reconnect_interval_max", default=1.0, min=0.0,
                 help="Longest wait between connection attempts, in seconds. Keep it "
                      "short: servers resume consuming at most this long after the "
                      "broker is back."),
    cfg.BoolOpt("amqp_durable_queues", default=False,
                help="Declare the control exchange durable and publish persistent "
                     "messages, so that casts queued in classic queues survive a broker "
                     "restart (work and host queues are durable in any case; quorum "
                     "queues keep every message). Every process of a cell must agree."),
    cfg.StrOpt("rabbit_queue_type", default="classic", choices=["classic", "quorum"],
               help="Type of the work and host queues. classic: one copy on one node, "
                    "the fastest, right for a single broker. quorum: replicated on the "
                    "nodes of a cluster (Raft), survives the loss of a minority of "
                    "them; use it on clusters. Changing it for existing queues needs a "
                    "migration (see the driver's README). Every process of a cell must "
                    "agree."),
    cfg.IntOpt("rabbit_quorum_delivery_limit", default=20, min=0,
               help="Quorum queues: a request handed to servers this many times without "
                    "being acknowledged (its servers crashed or lost their connection "
                    "while running it) is a poison message: its next delivery is "
                    "dropped, logged and counted (poisoned), and the broker drops it "
                    "too should that delivery be lost. 0: no limit (the broker's "
                    "default applies: unlimited before RabbitMQ 4.0, 20 since)."),
    cfg.IntOpt("rabbit_queue_expiry", default=3600, min=0,
               help="Seconds a work or host queue stays on the broker after its last "
                    "server went away, with the requests queued in it; then the broker "
                    "deletes it (x-expires), so the queues of hosts that never come "
                    "back disappear. 0: never. Every process of a cell must agree."),
    cfg.IntOpt("rabbit_notification_pool_expiry", default=604800, min=0,
               help="Seconds a notification pool's queue stays on the broker after its "
                    "last listener went away, with the notifications kept for it "
                    "(x-expires); then the broker deletes it, so pools that never come "
                    "back stop collecting notifications. Longer than notification_ttl, "
                    "so a pool back within it finds its backlog. 0: never. Default: "
                    "a week."),
    cfg.IntOpt("rabbit_prefetch_count", default=0, min=0,
               help="Unacknowledged messages the broker may hand each consumer of a "
                    "server; 0: a quarter of server_queue_size."),
    cfg.IntOpt("rabbit_max_unconfirmed", default=20000, min=1,
               help="Messages published but not yet confirmed by the broker, per "
                    "driver; senders wait when there are this many."),
]


@dataclass(frozen=True)
class ConnectionParams:
    """What the connection needs, resolved from options and URL."""

    hosts: tuple[TransportHost, ...]
    virtual_host: str
    ssl_options: dict[str, Any] | None
    heartbeat: int
    connect_timeout: float
    reconnect_interval: float
    reconnect_backoff: float
    reconnect_interval_max: float
    durable: bool
    queue_type: str
    delivery_limit: int
    queue_expiry: int
    prefetch_count: int
    max_unconfirmed: int
    url_for_logs: str = field(default="")
    pool_expiry: int = 604800

    def port_of(self, host: TransportHost) -> int:
        return host.port or (5671 if self.ssl_options is not None else 5672)


def _ssl_options(options: Any) -> dict[str, Any] | None:
    if not options.ssl:
        return None
    sslopts: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED}
    if options.ssl_ca_file:
        sslopts["ca_certs"] = options.ssl_ca_file
    if options.ssl_cert_file:
        sslopts["certfile"] = options.ssl_cert_file
        if options.ssl_key_file:
            sslopts["keyfile"] = options.ssl_key_file
    elif options.ssl_key_file:
        raise ConfigError("ssl_key_file is set but ssl_cert_file is not")
    if options.ssl_verify_hostname:
        sslopts["server_hostname"] = None  # the host connected to is checked
    return sslopts


def ssl_context(ssl_options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of :func:`_ssl_options`' settings (the certificate
    chain is always verified; the host name only with ``server_hostname``).

    :raises OSError: a certificate or key file cannot be read.
    """
    context = ssl.create_default_context(cafile=ssl_options.get("ca_certs"))
    context.check_hostname = "server_hostname" in ssl_options
    context.verify_mode = ssl.CERT_REQUIRED
    if ssl_options.get("certfile"):
        context.load_cert_chain(ssl_options["certfile"], ssl_options.get("keyfile"))
    return context


def connection_params(cell: Any) -> ConnectionParams:
    """Resolve a cell's options and URL.

    :raises ConfigError: inconsistent TLS options.
    """
    options = cell.options
    url = cell.url
    hosts = url.hosts or (TransportHost("localhost"),)
    prefetch = options.rabbit_prefetch_count or max(1, options.server_queue_size // 4)
    return ConnectionParams(
        hosts=tuple(hosts),
        virtual_host=url.virtual_host or "/",
        ssl_options=_ssl_options(options),
        heartbeat=options.heartbeat_interval,
        connect_timeout=options.connect_timeout,
        reconnect_interval=options.reconnect_interval,
        reconnect_backoff=options.reconnect_backoff,
        reconnect_interval_max=options.reconnect_interval_max,
        durable=options.amqp_durable_queues,
        queue_type=options.rabbit_queue_type,
        delivery_limit=options.rabbit_quorum_delivery_limit,
        queue_expiry=options.rabbit_queue_expiry,
        pool_expiry=options.rabbit_notification_pool_expiry,
        prefetch_count=prefetch,
        max_unconfirmed=options.rabbit_max_unconfirmed,
        url_for_logs=str(url),
    )

