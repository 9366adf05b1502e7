"""Socket options both ends of a connection set alike.

ZMTP heartbeats (``ZMQ_HEARTBEAT_IVL``) are deliberately **not** used:
libzmq 4.3.5 aborts the whole process (``Assertion failed: !_io_error``) when
a heartbeat timer fires on a connection whose peer reset it while the
socket's receive queue was full, which any client can bring about against a
busy server. Dead TCP connections are found by kernel keepalives instead;
dead *hosts* by the driver's own receipts and pings (see
:mod:`rpccore_zmq.casts`).
"""

from __future__ import annotations

import math
from typing import Any

import zmq

from rpccore_zmq.curve import CurveKeys, secure_client

#: Bytes a message may have beyond ``max_message_size`` (for its header,
#: topic and host) before libzmq drops the connection that sent it.
_HEADROOM = 65536


def set_common_options(sock: zmq.Socket[Any], queue_size: int, max_size: int,
                       keepalive_interval: float) -> None:
    """Queue limits, the size limit, no lingering on close, TCP keepalive.

    :param queue_size: messages queued each way per connection (high-water marks).
    :param max_size: largest envelope accepted; libzmq drops a connection
        that sends a frame well over it.
    :param keepalive_interval: seconds of silence before the kernel probes
        the connection, and between probes (three unanswered close it).
    """
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, queue_size)
    sock.setsockopt(zmq.RCVHWM, queue_size)
    # Envelopes a little over the limit reach the protocol checks and are
    # counted there; far larger messages make libzmq drop the connection.
    # (A message is a header, topic and host, and the envelope.)
    sock.setsockopt(zmq.MAXMSGSIZE, max_size + _HEADROOM)
    seconds = max(1, math.ceil(keepalive_interval))
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, seconds)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, seconds)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)


def client_socket(context: zmq.Context[Any], endpoint: str, queue_size: int, max_size: int,
                  keepalive_interval: float, curve: CurveKeys | None) -> zmq.Socket[Any]:
    """A DEALER connecting to ``endpoint`` (a server's ROUTER), with the
    common options, quick reconnects and CURVE when the cell has keys."""
    sock: zmq.Socket[Any] = context.socket(zmq.DEALER)
    try:
        set_common_options(sock, queue_size, max_size, keepalive_interval)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if endpoint.startswith("tcp://["):
            sock.setsockopt(zmq.IPV6, 1)
        if curve is not None:
            secure_client(sock, curve)
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock
