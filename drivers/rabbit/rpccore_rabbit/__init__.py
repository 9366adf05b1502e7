"""rpccore-rabbit: the RabbitMQ driver of rpccore (entry point ``rabbit``)."""

from rpccore_rabbit.driver import RabbitDriver

__all__ = ["RabbitDriver"]
