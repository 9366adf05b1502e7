"""What the client keeps per request and per peer connection."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from rpccore_zmq.frames import LockedSocket


class Outgoing:
    """One request on its way, and who (if anyone) waits for it: a call's
    caller is woken by its reply (or failure), a confirmed cast's by its
    receipt.

    ``candidates`` are the host strings it may go to, in order of preference;
    a host-directed or fanout message has exactly one.
    """

    __slots__ = ("kind", "topic", "host", "body", "candidates", "directed", "tried",
                 "refusals", "why", "error", "sent_at", "deadline", "peer", "reply", "_waiter")

    def __init__(self, kind: bytes, topic: bytes, host: bytes, body: bytes,
                 candidates: list[str], directed: bool, wait: bool,
                 deadline: float = 0.0) -> None:
        self.kind = kind
        self.topic = topic
        self.host = host
        self.body = body
        self.candidates = candidates
        self.directed = directed
        self.tried: list[str] = []
        self.refusals = 0
        self.why = ""
        self.error: Exception | None = None
        self.sent_at = 0.0
        self.deadline = deadline
        #: a call's reply, handed to its caller, who passes it to the core
        self.reply: bytes | None = None
        self.peer: Peer | None = None
        self._waiter: threading.Lock | None = None
        if wait:
            self.wait_for_it()

    def wait_for_it(self) -> None:
        """From now on, somebody will :meth:`wait` for it (call before the
        loop may :meth:`settle` it). A call that its caller runs
        (:mod:`rpccore_zmq.calls`) needs no waiter until it is handed to the
        loop."""
        if self._waiter is None:
            waiter = threading.Lock()
            waiter.acquire()
            self._waiter = waiter

    @property
    def waited_for(self) -> bool:
        return self._waiter is not None

    def settle(self, error: Exception | None) -> None:
        """Record the outcome and wake the waiter (loop thread)."""
        self.error = error
        if self._waiter is not None:
            self._waiter.release()

    def wait(self, deadline: float) -> bool:
        """Wait for :meth:`settle` until ``deadline``; False when it passed."""
        assert self._waiter is not None
        return self._waiter.acquire(timeout=max(0.0, deadline - time.monotonic()))


class Peer:
    """The connection to one peer endpoint.

    ``conn`` and ``unacked`` change only with ``lock`` held (callers send on
    the connection directly, the loop reads it).
    """

    __slots__ = ("endpoint", "host", "conn", "lock", "unacked", "dead", "last_used",
                 "last_ping", "last_heard", "handler", "backlog")

    def __init__(self, endpoint: str, host: str) -> None:
        self.endpoint = endpoint
        self.host = host
        self.lock = threading.RLock()
        self.conn: LockedSocket | None = None
        self.handler: Callable[[], bool] | None = None
        self.unacked: OrderedDict[int, Outgoing] = OrderedDict()
        self.dead = False
        self.last_used = time.monotonic()
        self.last_ping = 0.0
        #: when anything last came from the peer (receipts show a busy peer
        #: is alive even while a backlog keeps older messages unacknowledged)
        self.last_heard = 0.0
        #: frames a sending thread read but left to the loop, in order
        self.backlog: list[list[bytes]] = []
