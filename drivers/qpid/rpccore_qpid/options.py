"""Options the qpid driver adds to its cell's group (``[cell:NAME]``).

Every option can also be given as a query parameter of the transport URL:
``qpid://u:p@host:5671/?ssl=true&ssl_ca_file=/etc/ca.pem``.
"""

from __future__ import annotations

from oslo_config import cfg

from rpccore.opts import tls_opts

QPID_OPTS: list[cfg.Opt] = [
    *tls_opts,
    cfg.StrOpt("ssl_key_password", secret=True, help="Password of ssl_key_file."),
    cfg.FloatOpt("heartbeat_interval", default=30.0, min=0.0,
                 help="AMQP idle timeout in seconds: both ends send heartbeat frames so a "
                      "dead peer is noticed within about this time. 0 disables."),
    cfg.FloatOpt("connect_timeout", default=10.0, min=0.1,
                 help="Seconds one connection attempt to one host may take."),
    cfg.FloatOpt("reconnect_interval", default=0.25, min=0.0,
                 help="First delay before reconnecting after a failed attempt; grows by "
                      "reconnect_backoff with every failure up to reconnect_interval_max. "
                      "Every delay is jittered (half of it at random), and the first "
                      "attempt after a lost connection waits a random 0 to "
                      "reconnect_interval s."),
    cfg.FloatOpt("reconnect_backoff", default=2.0, min=1.0,
                 help="Factor the delay between reconnection attempts grows by."),
    cfg.FloatOpt("reconnect_interval_max", default=1.0, min=0.0,
                 help="Longest delay between reconnection attempts. Keep it short: "
                      "servers resume at most this long after the broker is back."),
    cfg.IntOpt("prefetch", default=64, min=1,
               help="Messages each server link takes from the broker ahead of "
                    "acknowledging them."),
    cfg.StrOpt("amqp_addresses", default="auto", choices=["auto", "v1", "v2"],
               help="AMQP 1.0 address format. v2: RabbitMQ 4's /queues/NAME and "
                    "/exchanges/NAME/KEY, queues declared through its management node "
                    "(exclusive reply and fanout queues, x-expires). v1: RabbitMQ 3.x's "
                    "rabbitmq_amqp1_0 plugin (/queue/NAME, /exchange/NAME/KEY; durable "
                    "queues, bounded by a broker policy). auto: v2 when the broker says "
                    "it is RabbitMQ 4 or later, else v1."),
    cfg.IntOpt("queue_expiry", default=3600, min=0,
               help="v2 addresses: seconds a work or host queue stays on the broker after "
                    "its last server went away (x-expires); 0: forever. Every process of "
                    "a cell must agree."),
    cfg.IntOpt("notification_pool_expiry", default=604800, min=0,
               help="RabbitMQ 4 (v2 addresses): seconds a notification listener pool's "
                    "queue stays on the broker after its last listener went away, with "
                    "the notifications kept for it (x-expires); then the broker deletes "
                    "it, so pools that never come back stop collecting notifications. "
                    "Longer than notification_ttl, so a pool back within it finds its "
                    "backlog. 0: never. Default: a week."),
    cfg.IntOpt("max_unsettled", default=2000, min=1,
               help="Messages sent but not yet acknowledged by the broker; senders "
                    "block (up to their deadline) beyond it."),
]


def list_opts() -> list[cfg.Opt]:
    """The options above (for :meth:`QpidDriver.options`)."""
    return list(QPID_OPTS)
