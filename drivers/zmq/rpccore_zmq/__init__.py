"""rpccore driver ``zmq``: brokerless cells on ZeroMQ.

Select it with ``transport_url = zmq://`` in a cell's section; see README.md
for options and delivery guarantees.
"""

from rpccore_zmq.driver import ZmqDriver

__all__ = ["ZmqDriver"]
