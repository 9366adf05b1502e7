"""The exceptions rpccore raises (the public API: README "Errors", docs/api.rst).

Errors raised *before* anything is sent (:class:`InvalidDestination`,
:class:`InvalidMessage`, :class:`ConfigError`) mean the caller must fix its
input. Errors raised *after* sending (:class:`Timeout`, :class:`RemoteError`,
:class:`Undeliverable`, :class:`TransportError`) describe what happened on
the way. Every one derives from :class:`RPCError`.
"""

from __future__ import annotations


class RPCError(Exception):
    """Base class of every error rpccore raises."""


class InvalidDestination(RPCError, ValueError):
    """The destination is malformed (empty topic) or names an unknown cell."""


class InvalidMessage(RPCError, ValueError):
    """The message cannot be sent: no method, args not a dict, args that JSON
    cannot encode, or an envelope larger than the cell's ``max_message_size``.
    Also raised by the envelope decoder for anything that is not a valid
    envelope."""


class VersionCapError(InvalidMessage):
    """A client was asked to send a message at a version above its
    ``version_cap``; nothing was sent."""


class ConfigError(RPCError):
    """The configuration is wrong: malformed ``transport_url``, a driver or
    matchmaker that is not installed, a bad option value."""


class Timeout(RPCError):
    """No reply arrived within the call's timeout, or (with ``heartbeat``)
    the server sent nothing, not even a keepalive, for a whole heartbeat."""


class Undeliverable(RPCError):
    """Nobody consumes the destination (reported where the backend can tell)."""


class TransportError(RPCError):
    """The backend could not be reached, or failed, after the driver's retries."""


class RemoteError(RPCError):
    """The remote endpoint raised, or could not dispatch the request.

    :ivar exc_type: name of the remote exception class (``"ValueError"``,
        ``"rpccore.NoSuchMethod"``...)
    :ivar value: the remote exception's message
    :ivar traceback: the remote traceback as text (may be empty)
    """

    def __init__(self, exc_type: str, value: str, traceback: str = "") -> None:
        super().__init__(f"{exc_type}: {value}")
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback
