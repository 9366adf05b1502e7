"""Servers the conformance kit may kill in the middle of a call.

A caller with a heartbeat must notice a server that died while running its
method, within the heartbeat, not at its timeout. The honest test kills a
server *process* (SIGKILL: no reply, no keepalive, no goodbye); a driver
test module that can reach servers in other processes provides one through
:meth:`~rpccore.testing.long_calls_conformance.LongCallConformance.start_server_peer`.
A driver that cannot cross processes (memory) gets :class:`InProcessPeer`: a
server in this process that is struck dumb on :meth:`ServerPeer.kill`, every
reply and keepalive it sends from then on being dropped before it reaches
the driver, which is what the caller of a killed process sees.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rpccore.driver import Incoming, Subscription

if TYPE_CHECKING:
    from rpccore.destination import Destination
    from rpccore.rpc import RPC

#: the endpoint every server peer serves, as ``"module:Class"`` (a process
#: started for a peer imports it from there and builds it with
#: ``announce=True``)
NAPPER = "rpccore.testing.server_peers:Napper"


class Napper:
    """A server peer's endpoint: ``nap(seconds)`` sleeps, then answers
    ``"rested"`` (woken early by :meth:`wake`, so a test can end at once).

    :param announce: print ``napping`` on stdout as a nap starts (a server
        process tells its test so).
    """

    def __init__(self, announce: bool = False) -> None:
        self._woken = threading.Event()
        self._announce = announce
        #: set once a nap has started
        self.napping = threading.Event()

    def nap(self, ctx: dict[str, Any], seconds: float) -> str:
        self.napping.set()
        if self._announce:
            print("napping", flush=True)
        self._woken.wait(seconds)
        return "rested"

    def wake(self) -> None:
        self._woken.set()


class ServerPeer(abc.ABC):
    """A server of a :class:`Napper` that a test may kill mid-call."""

    @abc.abstractmethod
    def wait_napping(self, timeout: float) -> bool:
        """True once the server runs a ``nap`` (False after ``timeout``)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Die at once, as a SIGKILLed process does: nothing more that the
        server sends (replies, keepalives, stream items) reaches anyone."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what is left of the peer (killed or not). Idempotent."""


class _Muted(Incoming):
    """An incoming message whose replies stop once its server is killed."""

    def __init__(self, inner: Incoming, dead: threading.Event) -> None:
        self.body = inner.body
        self._inner = inner
        self._dead = dead

    @property
    def can_reply(self) -> bool:
        return self._inner.can_reply

    def reply(self, body: bytes) -> None:
        if not self._dead.is_set():
            self._inner.reply(body)

    def release_thread(self, expected: float | None = None) -> bool:
        return self._inner.release_thread(expected)

    def requeue(self) -> bool:
        return self._inner.requeue()

    def ack(self) -> None:
        self._inner.ack()


class InProcessPeer(ServerPeer):
    """A :class:`Napper` served by ``rpc`` (an ``RPC`` of its own) at
    ``topic`` as ``host``, in this process; :meth:`kill` mutes it."""

    def __init__(self, rpc: RPC, topic: str, host: str | None) -> None:
        self._rpc = rpc
        self._dead = threading.Event()
        self._napper = Napper()
        driver = rpc.cell().driver()
        subscribe = driver.subscribe
        dead = self._dead

        def muted_subscribe(dest: Destination,
                            on_message: Callable[[Incoming], None]) -> Subscription:
            return subscribe(dest, lambda incoming: on_message(_Muted(incoming, dead)))

        # This RPC object's driver only: its servers' replies pass the gate.
        setattr(driver, "subscribe", muted_subscribe)  # noqa: B010 (mypy: no method assignment)
        self._server = rpc.serve(rpc.make_destination(topic, host=host), [self._napper]).start()

    def wait_napping(self, timeout: float) -> bool:
        return self._napper.napping.wait(timeout)

    def kill(self) -> None:
        self._dead.set()

    def close(self) -> None:
        self._dead.set()
        self._napper.wake()
        self._server.stop()
        self._server.wait(10)
