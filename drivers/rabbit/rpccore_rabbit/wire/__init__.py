"""The AMQP 0-9-1 protocol, owned by this driver (no kombu, no py-amqp).

The rest of the driver uses only the names exported here:

- :class:`AmqpConnection` (:mod:`.protocol`): socket, TLS, handshake,
  channels, synchronous methods, heartbeats, for one thread;
- :class:`Listener`: what the broker sends unasked (deliveries, confirms,
  returns, cancelled consumers, closed channels, blocked connections);
- :func:`publish_frames`, :func:`ack_frame` (:mod:`.frames`): the hot paths,
  built by hand and written in batches by the caller;
- the errors (:mod:`.errors`).

Why own it: the driver's speed comes from batching frames and decoding
deliveries and confirms without a generic layer, which py-amqp only allows
through its private internals (its read buffer, its frame handler). A
protocol of our own, small and tested on its own (``tests/unit/
test_rabbit_wire_*.py``), depends on no one's internals.
"""

from rpccore_rabbit.wire.errors import (
    ACCESS_REFUSED,
    NOT_FOUND,
    PRECONDITION_FAILED,
    RESOURCE_LOCKED,
    AccessRefused,
    AmqpError,
    ChannelClosed,
    ConnectionClosed,
    ProtocolError,
)
from rpccore_rabbit.wire.frames import ack_frame, method_frame, publish_frames
from rpccore_rabbit.wire.protocol import AmqpConnection, Listener

__all__ = [
    "ACCESS_REFUSED", "NOT_FOUND", "PRECONDITION_FAILED", "RESOURCE_LOCKED",
    "AccessRefused", "AmqpConnection", "AmqpError", "ChannelClosed", "ConnectionClosed",
    "Listener", "ProtocolError", "ack_frame", "method_frame", "publish_frames",
]
