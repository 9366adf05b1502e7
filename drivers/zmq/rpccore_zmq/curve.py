"""CURVE encryption and client authentication (optional).

Off unless ``zmq_curve_server_public_key`` is set. Then every connection of
the cell is encrypted (CurveZMQ) and clients check they talk to a server
holding the cell's server secret key. With ``zmq_curve_allowed_clients`` set,
servers also accept only clients whose public key is listed (checked by a ZAP
handler thread on the listener); a refused client's handshake fails, which the
server counts in ``zmq_bad_handshakes`` and the client sees as a host that
never acknowledges (``TransportError``).

Keys are 40 characters of Z85 (as ``zmq.curve_keypair()`` makes them) or 64
hex digits. In a config file a ``$`` of a Z85 key must be written ``$$``
(oslo.config substitutes ``$name``), or give the key in hex.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import zmq
from zmq.utils import z85

from rpccore.errors import ConfigError

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)


class CurveKeys(NamedTuple):
    """A cell's CURVE settings, checked."""

    server_public: bytes
    server_secret: bytes | None
    client_public: bytes
    client_secret: bytes
    allowed_clients: frozenset[bytes]


def _key(cell: CellView, option: str, value: str) -> bytes:
    """A key as Z85 bytes, from Z85 (40 characters) or hex (64 digits)."""
    text = value.strip()
    try:
        if len(text) == 64:
            return z85.encode(bytes.fromhex(text))
        if len(text) == 40:
            raw = text.encode("ascii")
            z85.decode(raw)
            return raw
    except (ValueError, KeyError, IndexError, UnicodeEncodeError):
        raise ConfigError(f"cell {cell.name}: {option} is not a valid Z85 or hex key") from None
    raise ConfigError(f"cell {cell.name}: {option} must be a CURVE key of 40 Z85 characters "
                      f"or 64 hex digits, not {len(text)} characters")


def curve_keys(cell: CellView) -> CurveKeys | None:
    """The cell's CURVE keys, or ``None`` when CURVE is off.

    :raises ConfigError: a key is malformed, or the server secret key does not
        match the server public key (the message never contains a key).
    """
    options = cell.options
    if not options.zmq_curve_server_public_key:
        return None
    if not zmq.has("curve"):
        raise ConfigError(f"cell {cell.name}: CURVE is configured but this libzmq lacks it")
    server_public = _key(cell, "zmq_curve_server_public_key",
                         options.zmq_curve_server_public_key)
    server_secret = None
    if options.zmq_curve_server_secret_key:
        server_secret = _key(cell, "zmq_curve_server_secret_key",
                             options.zmq_curve_server_secret_key)
        if zmq.curve_public(server_secret) != server_public:
            raise ConfigError(f"cell {cell.name}: zmq_curve_server_secret_key does not belong "
                              f"to zmq_curve_server_public_key")
    if options.zmq_curve_client_secret_key:
        client_secret = _key(cell, "zmq_curve_client_secret_key",
                             options.zmq_curve_client_secret_key)
        client_public = zmq.curve_public(client_secret)
    else:  # encryption only: an ephemeral client identity
        client_public, client_secret = zmq.curve_keypair()
    allowed = frozenset(_key(cell, "zmq_curve_allowed_clients", k)
                        for k in options.zmq_curve_allowed_clients)
    return CurveKeys(server_public, server_secret, client_public, client_secret, allowed)


def secure_client(sock: zmq.Socket[Any], keys: CurveKeys) -> None:
    """Make ``sock`` (not yet connected) a CURVE client of the cell's servers."""
    sock.curve_serverkey = keys.server_public
    sock.curve_publickey = keys.client_public
    sock.curve_secretkey = keys.client_secret


class _AllowedClients:
    """ZAP credentials provider: the listed public keys only."""

    def __init__(self, allowed: frozenset[bytes]) -> None:
        self.allowed = allowed

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.allowed


def secure_server(sock: zmq.Socket[Any], keys: CurveKeys, cell: CellView) -> Any:
    """Make ``sock`` (not yet bound) a CURVE server; returns the started ZAP
    authenticator when clients are restricted (stop it when closing), else
    ``None``.

    :raises ConfigError: this process serves but has no server secret key.
    """
    if keys.server_secret is None:
        raise ConfigError(f"cell {cell.name}: serving with CURVE needs "
                          f"zmq_curve_server_secret_key")
    authenticator = None
    if keys.allowed_clients:
        from zmq.auth.thread import ThreadAuthenticator

        authenticator = ThreadAuthenticator(sock.context, log=LOG)
        authenticator.start()
        authenticator.configure_curve_callback(
            "rpccore", credentials_provider=_AllowedClients(keys.allowed_clients))
        sock.zap_domain = b"rpccore"
    sock.curve_server = True
    sock.curve_secretkey = keys.server_secret
    sock.curve_publickey = keys.server_public
    return authenticator
