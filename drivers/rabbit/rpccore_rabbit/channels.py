"""Opening one connection of a :class:`~rpccore_rabbit.connection.Link`: TLS
context, login, and the three channels it works with."""

from __future__ import annotations

from rpccore.errors import ConfigError
from rpccore.transport_url import TransportHost
from rpccore_rabbit import wire
from rpccore_rabbit.options import ConnectionParams, ssl_context


def open_channels(listener: wire.Listener, params: ConnectionParams, host: TransportHost,
                  name: str) -> tuple[wire.AmqpConnection, tuple[int, int, int]]:
    """Connect to ``host`` and open the three channels a Link uses:
    publisher (in confirm mode), consumer (with the prefetch), declarer.

    :returns: the connection and the three channel numbers, in that order.
    :raises ConfigError: unreadable TLS files.
    :raises wire.AmqpError, OSError: the broker could not be had.
    """
    try:
        context = ssl_context(params.ssl_options) if params.ssl_options is not None else None
    except OSError as exc:
        raise ConfigError(f"TLS settings of {name}: {exc}") from None
    conn = wire.AmqpConnection(listener, heartbeat=params.heartbeat,
                               timeout=max(params.connect_timeout, 1.0),
                               properties={"connection_name": f"rpccore {name}"})
    conn.open(host.hostname, params.port_of(host),
              user=host.username if host.username is not None else "guest",
              password=host.password if host.password is not None else "guest",
              vhost=params.virtual_host, ssl_context=context)
    try:
        publisher = conn.channel()
        conn.call(publisher, "confirm.select", False)
        consumer = conn.channel()
        conn.call(consumer, "basic.qos", 0, params.prefetch_count, False)
        channels = (publisher, consumer, conn.channel())
    except BaseException:
        conn.abort()
        raise
    return conn, channels
