"""The driver conformance suite on the zmq driver, over real sockets.

Hosts are the loopback addresses 127.0.0.2-4 on one free port; each server
gets its own ``RPC`` bound to its host's address, and what serves without a
host (notification listeners) binds 127.0.0.5. Topics are resolved with the
redis matchmaker on the machine's Redis (127.0.0.1:6379), each test in a
cell of its own name so that tests never see each other's registrations.

Notifications: the kit's NotificationConformance (zmq stores none). A
requeued notification is redelivered to a listener of its pool on the same
host, so ``requeues_notifications`` stays True.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import redis

from process_peers import ServerProcess
from rpccore import RPC
from rpccore.testing import DriverConformance, NotificationConformance
from rpccore.testing.server_peers import NAPPER
from rpccore_zmq.testing import free_port, zmq_rpc

PORT = free_port()
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module", autouse=True)
def _redis_is_up() -> None:
    # fail loudly (never skip) when the shared Redis is missing
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()


#: where what serves as no host in particular binds (a listener, say)
ANY_HOST = "127.0.0.5"


class TestZmqConformance(DriverConformance, NotificationConformance):
    hosts = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    detects_undeliverable = True   # the matchmaker knows nobody serves the topic

    @pytest.fixture(autouse=True)
    def _cell_name(self) -> None:
        self._cell = "zmq-conf-" + os.urandom(4).hex()

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        options.setdefault("zmq_bind_address", host if host is not None else ANY_HOST)
        return zmq_rpc(PORT, cell=self._cell, matchmaker="redis", matchmaker_url=REDIS_URL,
                       **options)

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        return ServerProcess("zmq://", topic, host, [(NAPPER, {"announce": True})], cell=self._cell,
                             zmq_port=PORT, zmq_bind_address=host, matchmaker="redis",
                             matchmaker_url=REDIS_URL).wait_ready()
