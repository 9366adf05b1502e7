"""What can go wrong on an AMQP 0-9-1 connection."""

from __future__ import annotations

#: Reply codes the driver acts on (AMQP 0-9-1 and RabbitMQ's use of them).
NOT_FOUND = 404
ACCESS_REFUSED = 403
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406


class AmqpError(Exception):
    """Base of every error of :mod:`rpccore_rabbit.wire`."""


class ProtocolError(AmqpError):
    """The peer sent bytes that are not AMQP 0-9-1 as this client knows it."""


class ConnectionClosed(AmqpError):
    """The connection is gone: the broker closed it (``code`` and ``text``
    from its ``connection.close``), the socket ended, or heartbeats stopped
    (``code`` 0)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"({code}) {text}" if code else text)
        self.code = code
        self.text = text


class AccessRefused(ConnectionClosed):
    """The broker refused the credentials or the virtual host: retrying
    cannot help."""


class ChannelClosed(AmqpError):
    """The broker closed a channel in answer to a method (the connection
    lives on): ``code`` and ``text`` from its ``channel.close``, e.g. 406
    PRECONDITION_FAILED for a queue declared with other arguments."""

    def __init__(self, code: int, text: str, method: str = "") -> None:
        prefix = f"{method}: " if method else ""
        super().__init__(f"{prefix}({code}) {text}")
        self.code = code
        self.text = text
        self.method = method
