"""What the client keeps per request and per peer connection."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from rpccore.driverkit import Completion

from rpccore_zmq.frames import LockedSocket


class Outgoing:
    """One request on its way, and who (if anyone) waits for it: a call's
    caller is woken by its reply (or failure), a confirmed cast's by its
    receipt, through :attr:`done`.

    ``candidates`` are the host strings it may go to, in order of preference;
    a host-directed or fanout message has exactly one.
    """

    __slots__ = ("kind", "topic", "host", "body", "candidates", "directed", "tried",
                 "refusals", "why", "sent_at", "deadline", "peer", "done")

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
        self.sent_at = 0.0
        self.deadline = deadline
        self.peer: Peer | None = None
        #: its outcome, for whoever waits: a call's reply (the caller passes
        #: it to the core), ``None`` for a receipt, or the error
        self.done: Completion[bytes | None] | None = Completion() if wait else None

    def wait_for_it(self) -> None:
        """From now on, somebody will wait for it (call before the loop may
        :meth:`settle` it). A call that its caller runs
        (:mod:`rpccore_zmq.calls`) needs nothing to wait on until it is
        handed to the loop."""
        if self.done is None:
            self.done = Completion()

    @property
    def waited_for(self) -> bool:
        return self.done is not None

    def settle(self, error: Exception | None, reply: bytes | None = None) -> None:
        """Record the outcome and wake the waiter (loop thread)."""
        done = self.done
        if done is not None:
            if error is None:
                done.set_result(reply)
            else:
                done.set_error(error)


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
