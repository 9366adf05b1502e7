"""rpccore's NATS driver (``transport_url = nats://host:4222``): core NATS
request/reply for calls and casts, JetStream for confirmed casts and
notifications. See the README of the ``rpccore-nats`` distribution."""

from rpccore_nats.driver import NatsDriver

__all__ = ["NatsDriver"]
