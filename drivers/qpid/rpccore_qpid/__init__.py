"""rpccore's AMQP 1.0 driver (``transport_url = qpid://user:pass@host:port/``).

Built on Apache Qpid Proton's Python binding; tested against RabbitMQ's
``rabbitmq_amqp1_0`` plugin. See :class:`rpccore_qpid.driver.QpidDriver`.
"""

from rpccore_qpid.driver import QpidDriver

__all__ = ["QpidDriver"]
