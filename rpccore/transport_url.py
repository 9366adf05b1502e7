"""Parsing of ``transport_url`` values such as
``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?ssl=true``.

The scheme names the driver; several comma-separated hosts give failover
(each ``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address: see
:mod:`rpccore.driverkit.hosts`); query parameters override same-named
options of the cell. Passwords never
appear in ``str()`` or ``repr()`` of a parsed URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from rpccore.driverkit.hosts import BadAddress, parse_host_port
from rpccore.errors import ConfigError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)


@dataclass(frozen=True)
class TransportHost:
    """One broker or peer address of a transport URL."""

    hostname: str
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        auth = ""
        if self.username is not None:
            auth = self.username + (":****" if self.password else "") + "@"
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return auth + host + (f":{self.port}" if self.port is not None else "")


@dataclass(frozen=True)
class TransportURL:
    """A parsed transport URL."""

    scheme: str
    hosts: tuple[TransportHost, ...] = ()
    virtual_host: str | None = None
    query: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        """The URL with every password masked: safe to log."""
        text = f"{self.scheme}://" + ",".join(str(h) for h in self.hosts)
        if self.virtual_host is not None:
            text += "/" + self.virtual_host
        if self.query:
            text += "?" + "&".join(f"{k}={v}" for k, v in self.query.items())
        return text

    __repr__ = __str__


def _parse_host(text: str, url_for_errors: str) -> TransportHost:
    username = password = None
    if "@" in text:
        auth, text = text.rsplit("@", 1)
        if ":" in auth:
            user, pw = auth.split(":", 1)
            username, password = unquote(user), unquote(pw)
        else:
            username = unquote(auth)
    try:
        hostname, port = parse_host_port(text)
    except BadAddress as exc:
        raise ConfigError(f"transport_url {url_for_errors}: {exc}") from None
    return TransportHost(unquote(hostname), port, username, password)


def _masked(url: str) -> str:
    return re.sub(r"(://|,)([^:@/,]*):[^@/,]*@", r"\1\2:****@", url)


def parse_transport_url(url: str) -> TransportURL:
    """Parse ``url``.

    :raises ConfigError: the URL has no ``scheme://``, a host is empty, or a
        port is not a number. The message masks passwords.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("transport_url is empty; expected e.g. rabbit://user:pass@host:5672/")
    safe = _masked(url)
    match = _SCHEME.match(url.strip())
    if not match:
        raise ConfigError(f"transport_url {safe!r} is malformed: expected SCHEME://[HOSTS][/VHOST]")
    scheme, rest = match.group(1).lower(), match.group(2)
    rest, _, query_text = rest.partition("?")
    netloc, slash, vhost = rest.partition("/")
    hosts = tuple(_parse_host(part, repr(safe)) for part in netloc.split(",")) if netloc else ()
    try:
        query = dict(parse_qsl(query_text, keep_blank_values=True, strict_parsing=bool(query_text)))
    except ValueError as exc:
        raise ConfigError(f"transport_url {safe!r}: malformed query: {exc}") from None
    return TransportURL(scheme, hosts, unquote(vhost) if slash else None, query)
