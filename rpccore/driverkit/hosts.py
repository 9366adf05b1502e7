"""Host strings: ``name``, ``name:port``, ``[v6]``, ``[v6]:port``, bare IPv6.

Drivers meet host strings in transport URLs (``rabbit://h1:5672,h2/``), in
destinations and from matchmakers (``10.0.0.5:9600``). They are parsed in
one place, so that every driver accepts the same forms and refuses the same
mistakes:

=========================  =========================  ====
text                       host                       port
=========================  =========================  ====
``compute-7.example.org``  ``compute-7.example.org``  none
``10.0.0.5:9600``          ``10.0.0.5``               9600
``[fd00::5]:9600``         ``fd00::5``                9600
``[fd00::5]``              ``fd00::5``                none
``fd00::5`` (bare IPv6)    ``fd00::5``                none
=========================  =========================  ====

A bare IPv6 address (two or more colons, no brackets) never carries a port:
``fd00::5:9600`` is the address ``fd00::5:9600``. Write ``[fd00::5]:9600``.

Example, in a driver that connects to host strings::

    from rpccore.driverkit import BadAddress, parse_host_port

    try:
        where = parse_host_port(dest.host, default_port=self.cell.options.my_port)
    except BadAddress as exc:
        raise rpccore.InvalidDestination(str(exc)) from None
    url = f"tcp://{where}"        # tcp://[fd00::5]:9600
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["BadAddress", "HostPort", "parse_host_port"]


class BadAddress(ValueError):
    """A host string that is not one of the accepted forms. The message
    names the string and what is wrong with it; drivers turn it into the
    error their caller expects (``ConfigError`` for configuration,
    ``InvalidDestination`` for a destination)."""


class HostPort(NamedTuple):
    """A parsed host string. ``str()`` gives it back in a form that parses
    to the same value (IPv6 addresses in brackets)."""

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def parse_host_port(text: str, default_port: int | None = None) -> HostPort:
    """Split a host string into host and port (surrounding blanks ignored).

    :param default_port: the port of a string that names none (``None``:
        the result's port is then ``None``).
    :raises BadAddress: empty host, unclosed ``[``, anything but ``:port``
        after ``]``, or a port that is not a number from 1 to 65535.
    """
    stripped = text.strip()
    if stripped.startswith("["):
        end = stripped.find("]")
        if end < 0:
            raise BadAddress(f"host {text!r}: unclosed '['")
        host, rest = stripped[1:end], stripped[end + 1:]
        if rest and not rest.startswith(":"):
            raise BadAddress(f"host {text!r}: junk after ']'")
        port_text = rest[1:]
    elif stripped.count(":") == 1:
        host, port_text = stripped.split(":")
    else:  # a name, or a bare IPv6 address
        host, port_text = stripped, ""
    if not host:
        raise BadAddress(f"host {text!r} has no address")
    return HostPort(host, _port(text, port_text, default_port))


def _port(text: str, port_text: str, default_port: int | None) -> int | None:
    if not port_text:
        return default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise BadAddress(f"host {text!r}: port {port_text!r} is not a number from 1 to 65535")
    return int(port_text)
