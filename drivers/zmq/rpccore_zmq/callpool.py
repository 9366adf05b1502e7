"""Connections for calls: idle DEALERs kept per peer endpoint, each taken by
one call at a time (see :mod:`rpccore_zmq.calls`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import zmq

from rpccore.errors import TransportError

#: Idle connections kept per peer endpoint (more are made while more threads
#: call that peer at once, and closed when given back).
IDLE_PER_ENDPOINT = 8


class CallPool:
    """Idle call connections by endpoint, least recently used first.

    :param make_socket: a new DEALER connected to an endpoint.
    :param max_idle: connections kept idle in all (the rest are closed).
    """

    def __init__(self, make_socket: Callable[[str], zmq.Socket[Any]], max_idle: int) -> None:
        self._make_socket = make_socket
        self._max_idle = max_idle
        self._idle: OrderedDict[str, list[zmq.Socket[Any]]] = OrderedDict()
        self._idle_count = 0
        self._lock = threading.Lock()
        self.closed = False

    def take(self, endpoint: str) -> zmq.Socket[Any]:
        """A connection to ``endpoint`` for the caller alone.

        :raises TransportError: the pool is closed.
        """
        with self._lock:
            if self.closed:
                raise TransportError("the zmq driver was closed")
            idle = self._idle.get(endpoint)
            if idle:
                self._idle_count -= 1
                return idle.pop()
        return self._make_socket(endpoint)

    def give(self, endpoint: str, sock: zmq.Socket[Any], reusable: bool = True) -> None:
        """Return a connection; closed instead when not ``reusable`` (it may
        hold queued messages to a peer that stopped answering), when enough
        are idle, or when the pool is closed."""
        with self._lock:
            if reusable and not self.closed:
                idle = self._idle.setdefault(endpoint, [])
                self._idle.move_to_end(endpoint)
                if len(idle) < IDLE_PER_ENDPOINT:
                    idle.append(sock)
                    self._idle_count += 1
                    while self._idle_count > self._max_idle:
                        self._close_oldest()
                    return
        sock.close(linger=0)

    def idle(self) -> dict[str, int]:
        """How many idle connections there are, by endpoint."""
        with self._lock:
            return {endpoint: len(socks) for endpoint, socks in self._idle.items() if socks}

    def forget(self, endpoint: str) -> None:
        """Close the idle connections to ``endpoint`` (it stopped answering)."""
        with self._lock:
            idle = self._idle.pop(endpoint, [])
            self._idle_count -= len(idle)
        for sock in idle:
            sock.close(linger=0)

    def close(self) -> None:
        """Close every idle connection; those in use close when given back."""
        with self._lock:
            self.closed = True
            idle = [sock for socks in self._idle.values() for sock in socks]
            self._idle.clear()
            self._idle_count = 0
        for sock in idle:
            sock.close(linger=0)

    def _close_oldest(self) -> None:
        endpoint, idle = next(iter(self._idle.items()))
        if idle:
            idle.pop(0).close(linger=0)
            self._idle_count -= 1
        if not idle:
            del self._idle[endpoint]
