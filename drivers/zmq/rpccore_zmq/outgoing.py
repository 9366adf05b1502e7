"""One request on its way from a client: where it may go, where it went,
and the outcome its sender waits for."""

from __future__ import annotations

from collections.abc import Callable

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError


class Outgoing:
    """One request on its way, and who (if anyone) waits for it: a call's
    caller is woken by its reply (or failure), a confirmed cast's by its
    receipt, through :attr:`done`.

    ``candidates`` are the host strings it may go to, in order of preference;
    a host-directed or fanout message has exactly one. ``tried`` are those it
    was sent to, in order (see :mod:`rpccore_zmq.failover`).
    """

    __slots__ = ("kind", "topic", "host", "body", "candidates", "directed", "tried",
                 "refusals", "why", "sent_at", "deadline", "endpoint", "done", "on_failure")

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
        #: why the last host tried did not take it
        self.why = ""
        self.sent_at = 0.0
        self.deadline = deadline
        #: the endpoint whose shared connection it was last sent on
        self.endpoint = ""
        #: its outcome, for whoever waits: a call's reply (the caller passes
        #: it to the core), ``None`` for a receipt, or the error
        self.done: Completion[bytes | None] | None = Completion() if wait else None
        #: told of its failure, when its sender waits elsewhere (a call of
        #: asyncio code: see rpccore.driver.caller_elsewhere)
        self.on_failure: Callable[[RPCError], None] | None = None

    def wait_for_it(self) -> Completion[bytes | None]:
        """From now on, somebody waits for it (call before the loop may
        :meth:`settle` it). A call that its caller runs on a connection of
        its own (:mod:`rpccore_zmq.calls`) needs nothing to wait on until it
        is handed to the loop."""
        if self.done is None:
            self.done = Completion()
        return self.done

    @property
    def waited_for(self) -> bool:
        return self.done is not None

    def settle(self, error: Exception | None, reply: bytes | None = None) -> None:
        """Record the outcome and wake the waiter, if any."""
        done = self.done
        if done is not None:
            if error is None:
                done.set_result(reply)
            elif done.set_error(error) and self.on_failure is not None:
                self.on_failure(error if isinstance(error, RPCError)
                                else TransportError(str(error)))
