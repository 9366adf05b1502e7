"""Helpers for tests of applications (and of this driver) on zmq cells."""

from __future__ import annotations

import os
import socket
from typing import Any

from rpccore.rpc import RPC
from rpccore.testing import single_cell_rpc


def free_port(address: str = "0.0.0.0") -> int:
    """A TCP port that nothing listens on right now (on ``address``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def zmq_rpc(port: int, cell: str | None = None, **options: Any) -> RPC:
    """An ``RPC`` whose default cell is a zmq cell on ``port``.

    :param cell: the cell's name (default: a fresh random one, which also
        gives the cell its own key namespace in a redis matchmaker).
    :param options: more cell options (``zmq_bind_address``, ``matchmaker``...).
    """
    return single_cell_rpc("zmq://", cell=cell or "zmq-" + os.urandom(4).hex(),
                           zmq_port=port, **options)
