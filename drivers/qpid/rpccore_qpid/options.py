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
                      "reconnect_backoff with every failure up to reconnect_interval_max."),
    cfg.FloatOpt("reconnect_backoff", default=2.0, min=1.0,
                 help="Factor the delay between reconnection attempts grows by."),
    cfg.FloatOpt("reconnect_interval_max", default=10.0, min=0.0,
                 help="Longest delay between reconnection attempts."),
    cfg.IntOpt("prefetch", default=64, min=1,
               help="Messages each server link takes from the broker ahead of "
                    "acknowledging them."),
    cfg.IntOpt("max_unsettled", default=2000, min=1,
               help="Messages sent but not yet acknowledged by the broker; senders "
                    "block (up to their deadline) beyond it."),
]


def list_opts() -> list[cfg.Opt]:
    """The options above (for :meth:`QpidDriver.options`)."""
    return list(QPID_OPTS)
