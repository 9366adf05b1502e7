"""Calls: sent and answered on the thread that makes them, like a plain
REQ/REP round trip, without a hand-off to the client's loop and back (each
one a thread switch, the largest cost of a call).

A caller takes a connection of its own from the :class:`~rpccore_zmq.callpool.CallPool`
for the duration of one call (nobody else uses it meanwhile, so no lock is
held while waiting) and gives it back. A reply that arrives after its call
gave up is recognised by its sequence number and skipped by the next call on
that connection. Failover, refusals and dead hosts follow the same rules as
for casts (:func:`~rpccore_zmq.failover.fail_over`).

A call to a host that still has casts from this client unacknowledged goes
on their shared connection instead (:mod:`rpccore_zmq.casts`), so that it
cannot overtake them: a cast followed by a call to the same host arrives
first.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import zmq

from rpccore.driver import ReplyHandler
from rpccore.errors import TransportError
from rpccore_zmq import protocol
from rpccore_zmq.callpool import CallPool
from rpccore_zmq.casts import CastSender
from rpccore_zmq.failover import NextHost, fail_over, failure
from rpccore_zmq.frames import recv_frames, send_frame
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable

#: Seconds between checks, while a call that a host has taken waits for its
#: reply, of whether that host has been marked dead meanwhile.
IN_FLIGHT_CHECK = 0.25


class CallPath:
    """Runs calls on the calling threads, over connections of its own pool.

    :param casts: the client's cast sender (calls that must follow casts go
        through it; a call that finds a host silent tells it).
    :param new_socket: a new DEALER connected to an endpoint.
    """

    def __init__(self, peers: PeerTable, casts: CastSender,
                 new_socket: Callable[[str], zmq.Socket[Any]]) -> None:
        self.peers = peers
        self.casts = casts
        self.receipt_timeout = peers.receipt_timeout
        #: a call connection's usual receive timeout
        self.receipt_ms = max(1, int(peers.receipt_timeout * 1000))
        self._new_socket = new_socket
        self.pool = CallPool(self._call_socket, peers.cell.options.zmq_max_peers)

    def _call_socket(self, endpoint: str) -> zmq.Socket[Any]:
        sock = self._new_socket(endpoint)
        sock.setsockopt(zmq.RCVTIMEO, self.receipt_ms)
        return sock

    def call(self, out: Outgoing, on_reply: ReplyHandler) -> None:
        """Send the call ``out`` and hand its replies to ``on_reply``, reading
        while it says more are wanted (keepalives, stream items) and until
        ``out.deadline``.

        :raises Undeliverable: every host refused it.
        :raises TransportError: no host took it, or the one that did stopped
            answering, or the driver was closed.
        """
        if not fail_over(out, self.peers, functools.partial(self._try_host, out, on_reply)):
            raise failure(out)

    def _try_host(self, out: Outgoing, on_reply: ReplyHandler, host: str,
                  endpoint: str) -> None:
        if len(out.tried) == 1 and self.casts.in_flight(endpoint):
            # it must follow casts to its first host: handed to the cast
            # sender untried, which sends it on their connection
            out.tried.clear()
            self._call_in_order(out)
            return
        try:
            sock = self.pool.take(endpoint)
        except zmq.ZMQError as exc:  # out of file descriptors, say
            raise TransportError(f"cannot open a connection to {host}: {exc}") from None
        reusable = False
        try:
            self._exchange(sock, endpoint, host, out, on_reply)
            # (a connection left after an error may hold queued requests to a
            # peer that stopped answering: it is closed)
            reusable = True
        finally:
            self.pool.give(endpoint, sock, reusable)

    def _call_in_order(self, out: Outgoing) -> None:
        """A call that follows casts to its host still in flight: sent on the
        same connection as they were, so that it arrives after them. The
        client's loop reads its replies and hands every one to the cell's
        handler (the ``on_reply`` of every call); this thread waits for the
        first, or for the call to fail."""
        done = out.wait_for_it()
        self.casts.send(out)
        if done.wait_until(out.deadline):
            done.result(0)  # raises what failed it

    def _exchange(self, sock: zmq.Socket[Any], endpoint: str, host: str, out: Outgoing,
                  on_reply: ReplyHandler) -> None:
        """One try of a call on ``sock``: send, then read what comes back
        until ``on_reply`` wants no more or the deadline passes.

        :raises NextHost: refused, unsendable, or nothing heard from the
            host in ``zmq_receipt_timeout`` (the host is then marked dead).
        :raises TransportError: see :meth:`_receive_failed`.
        """
        seq = next(self.peers.seq)
        try:
            send_frame(sock, protocol.request(out.kind, seq, out.topic, out.host, out.body))
        except zmq.ZMQError as exc:
            raise NextHost(f"sending to {host} failed: {exc}") from None
        sent_at = time.monotonic()
        taken = False  # the host acknowledged it (a receipt, or a first reply)
        timeout_ms = self.receipt_ms  # the connection's receive timeout now
        # The first wait, when the deadline is further off than a receipt
        # (nearly always), is the connection's usual timeout as it is.
        first = out.deadline - sent_at >= self.receipt_timeout
        try:
            while True:
                if not first:
                    wanted = self._next_wait(endpoint, host, out, sent_at, taken)
                    if wanted is None:
                        return  # the deadline passed
                    if wanted != timeout_ms:
                        sock.setsockopt(zmq.RCVTIMEO, wanted)
                        timeout_ms = wanted
                first = False
                got = self._receive(sock, endpoint, host, seq, taken)
                if got is None:
                    continue
                kind, envelope = got
                if kind != protocol.REPLY:
                    taken = self._not_a_reply(kind, endpoint, host, out) or taken
                elif not on_reply(envelope):
                    return
                else:
                    taken = True  # more to come (keepalives, stream items)
        finally:
            if timeout_ms != self.receipt_ms:
                try:
                    sock.setsockopt(zmq.RCVTIMEO, self.receipt_ms)
                except zmq.ZMQError:
                    pass

    def _receive(self, sock: zmq.Socket[Any], endpoint: str, host: str, seq: int,
                 taken: bool) -> tuple[bytes, bytes] | None:
        """The next frame for call ``seq`` on ``sock``; ``None`` when what
        came is of no use to it (a receive error handled by
        :meth:`_receive_failed`, a malformed frame, or a frame of an earlier
        call on this connection that gave up)."""
        try:
            frames = recv_frames(sock, 0)
        except zmq.ZMQError as exc:
            self._receive_failed(exc, host, taken)
            return None
        self.peers.heard[endpoint] = time.monotonic()
        try:
            kind, got, envelope = protocol.parse_reply(frames)
        except protocol.Malformed as exc:
            self.peers.malformed(endpoint, str(exc))
            return None
        if got != seq:
            return None
        return kind, envelope

    def _next_wait(self, endpoint: str, host: str, out: Outgoing, sent_at: float,
                   taken: bool) -> int | None:
        """Milliseconds the next receive may wait (``None``: the deadline
        has passed): until the deadline, but no longer than the host may
        stay silent (not taken yet) or than :data:`IN_FLIGHT_CHECK` (taken).

        :raises NextHost: nothing at all came from the host for the whole
            receipt timeout (it is marked dead).
        """
        now = time.monotonic()
        if now >= out.deadline:
            return None
        if taken:
            until = min(out.deadline, now + IN_FLIGHT_CHECK)
        else:
            last = max(sent_at, self.peers.heard.get(endpoint, 0.0))
            until = min(out.deadline, last + self.receipt_timeout)
        if until <= now:
            why = (f"no receipt from {host} within {self.receipt_timeout:g} s, "
                   f"nothing else heard from it")
            self.casts.mark_silent(host, why)
            raise NextHost(why)
        # A blocking receive (the GIL is released while it waits), with the
        # connection's usual timeout unless this wait is shorter.
        wait_ms = max(1, int((until - now) * 1000.0))
        return self.receipt_ms if wait_ms >= self.receipt_ms - 50 else wait_ms

    def _receive_failed(self, exc: zmq.ZMQError, host: str, taken: bool) -> None:
        """A receive ended without a message: returns for a plain timeout.

        :raises TransportError: the driver was closed, the connection
            failed, or the host was marked dead after taking the call.
        """
        if self.pool.closed:
            raise TransportError(f"cell {self.peers.cell.name}: the zmq driver was "
                                 f"closed") from None
        if not isinstance(exc, zmq.Again):
            raise TransportError(f"the call to {host} failed: {exc}") from None
        if taken and self.peers.is_dead(host):
            raise TransportError(f"{host} stopped answering while the call was in "
                                 f"flight") from None

    def _not_a_reply(self, kind: bytes, endpoint: str, host: str, out: Outgoing) -> bool:
        """A message of the call's that is not a reply; True for a receipt.

        :raises NextHost: the host refused the call.
        """
        if kind == protocol.RECEIPT:
            return True
        if kind == protocol.REFUSED:
            out.refusals += 1
            raise NextHost(f"nobody consumes it on {host}")
        self.peers.malformed(endpoint, f"unknown kind {kind[:8]!r}")
        return False

    def close(self) -> None:
        """Close the idle connections; those in use close when given back."""
        self.pool.close()
