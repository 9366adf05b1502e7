"""What the qpid driver connects to and how: broker URLs, credentials, TLS.

Pure functions of the cell's transport URL and options, so they are tested
without a broker.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from proton import SSL, SSLDomain, SSLException

from rpccore.driverkit import HostPort
from rpccore.errors import ConfigError

if TYPE_CHECKING:
    from rpccore.cellview import CellView


class BrokerAddress:
    """One broker address of the URL, with its credentials (never logged)."""

    def __init__(self, url: str, user: str | None, password: str | None, shown: str) -> None:
        self.url = url
        self.user = user
        self.password = password
        self.shown = shown


def broker_addresses(cell: CellView) -> list[BrokerAddress]:
    """The URL's hosts in order, as proton URLs (``amqps`` with ``ssl``).

    :raises ConfigError: the URL names no host.
    """
    opts = cell.options
    scheme = "amqps" if opts.ssl else "amqp"
    default_port = 5671 if opts.ssl else 5672
    hosts = cell.url.hosts
    if not hosts:
        raise ConfigError(f"cell {cell.name}: transport_url {cell.url} names no host; "
                          "expected qpid://user:pass@host:5672/")
    out = []
    for host in hosts:
        where = HostPort(host.hostname, host.port or default_port)  # IPv6 in brackets
        out.append(BrokerAddress(f"{scheme}://{where}", host.username, host.password,
                                 f"{scheme}://{host}"))
    return out


def ssl_domain(cell: CellView) -> SSLDomain | None:
    """The TLS settings of the cell, or None without ``ssl``.

    :raises ConfigError: proton was built without TLS, or a certificate or
        key file is missing or unusable.
    """
    opts = cell.options
    if not opts.ssl:
        return None
    for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
        path = getattr(opts, name)
        if path and not os.path.isfile(path):
            raise ConfigError(f"cell {cell.name}: {name} {path!r} is not a file")
    if not SSL.present():
        raise ConfigError(f"cell {cell.name}: ssl is on but python-qpid-proton was built "
                          "without TLS (install pkg-config and libssl-dev, then reinstall it)")
    try:
        return _domain(opts)
    except SSLException as exc:
        raise ConfigError(f"cell {cell.name}: bad TLS settings: {exc}") from None


def _domain(opts: Any) -> SSLDomain:
    domain = SSLDomain(SSLDomain.MODE_CLIENT)
    if opts.ssl_ca_file:
        domain.set_trusted_ca_db(opts.ssl_ca_file)
        mode = SSLDomain.VERIFY_PEER_NAME if opts.ssl_verify_hostname else SSLDomain.VERIFY_PEER
        domain.set_peer_authentication(mode, opts.ssl_ca_file)
    elif opts.ssl_verify_hostname:
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    else:
        domain.set_peer_authentication(SSLDomain.ANONYMOUS_PEER)
    if opts.ssl_cert_file:
        domain.set_credentials(opts.ssl_cert_file, opts.ssl_key_file or opts.ssl_cert_file,
                               opts.ssl_key_password)
    return domain


def connect_options(cell: CellView, target: BrokerAddress,
                    ssl: SSLDomain | None) -> dict[str, Any]:
    """Keyword arguments of ``Container.connect`` for one attempt at ``target``.

    Reconnecting is the driver's own business (``reconnect=False``). With a
    user name only SASL PLAIN is offered: proton would otherwise fall back to
    ANONYMOUS, which RabbitMQ maps to guest, so a wrong password would go
    unnoticed.
    """
    kwargs: dict[str, Any] = {"reconnect": False, "sasl_enabled": True,
                              "allow_insecure_mechs": True}
    if target.user is not None:
        kwargs.update(allowed_mechs="PLAIN", user=target.user, password=target.password or "")
    else:
        kwargs["allowed_mechs"] = "ANONYMOUS"
    if cell.options.heartbeat_interval:
        kwargs["heartbeat"] = cell.options.heartbeat_interval
    if ssl is not None:
        kwargs["ssl_domain"] = ssl
    if cell.url.virtual_host:
        kwargs["virtual_host"] = f"vhost:{cell.url.virtual_host}"
    return kwargs
