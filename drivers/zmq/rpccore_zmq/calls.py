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
        first = self.peers.next_host(out)
        if first is not None and self.casts.in_flight(first):
            self._call_in_order(out, on_reply)
            return
        if not fail_over(out, self.peers, functools.partial(self._try_host, out, on_reply)):
            raise failure(out)

    def _try_host(self, out: Outgoing, on_reply: ReplyHandler, host: str,
                  endpoint: str) -> None:
        try:
            sock = self.pool.take(endpoint)
        except zmq.ZMQError as exc:  # out of file descriptors, say
            raise TransportError(f"cannot open a connection to {host}: {exc}") from None
        reusable = False
        try:
            _Attempt(self, sock, endpoint, host, out).run(on_reply)
            # (a connection left after an error may hold queued requests to a
            # peer that stopped answering: it is closed)
            reusable = True
        finally:
            self.pool.give(endpoint, sock, reusable)

    def _call_in_order(self, out: Outgoing, on_reply: ReplyHandler) -> None:
        """A call that follows casts to its host still in flight: sent on the
        same connection as they were, so that it arrives after them; the
        client's loop reads its first reply (later ones, of the same
        sequence number, go to the cell's handler)."""
        done = out.wait_for_it()
        self.casts.send(out)
        if not done.wait_until(out.deadline):
            return
        reply = done.result(0)
        if reply is not None:
            on_reply(reply)

    def close(self) -> None:
        """Close the idle connections; those in use close when given back."""
        self.pool.close()


class _Attempt:
    """One try of a call on a connection of its own: send, then read what
    comes back until ``on_reply`` wants no more or the deadline passes.

    :raises NextHost: (from :meth:`run`) refused, unsendable, or nothing
        heard from the host in ``zmq_receipt_timeout`` (the host is then
        marked dead).
    """

    __slots__ = ("path", "sock", "endpoint", "host", "out", "seq", "sent_at", "taken",
                 "timeout_ms")

    def __init__(self, path: CallPath, sock: zmq.Socket[Any], endpoint: str, host: str,
                 out: Outgoing) -> None:
        self.path = path
        self.sock = sock
        self.endpoint = endpoint
        self.host = host
        self.out = out
        self.seq = next(path.peers.seq)
        self.sent_at = 0.0
        #: the host acknowledged the call (a receipt, or a first reply)
        self.taken = False
        #: the connection's receive timeout now
        self.timeout_ms = path.receipt_ms

    def run(self, on_reply: ReplyHandler) -> None:
        out = self.out
        try:
            send_frame(self.sock, protocol.request(out.kind, self.seq, out.topic, out.host,
                                                   out.body))
        except zmq.ZMQError as exc:
            raise NextHost(f"sending to {self.host} failed: {exc}") from None
        self.sent_at = time.monotonic()
        # The first wait, when the deadline is further off than a receipt
        # (nearly always), is the connection's usual timeout as it is.
        first = out.deadline - self.sent_at >= self.path.receipt_timeout
        try:
            while first or self._set_timeout():
                first = False
                frames = self._receive()
                if frames is not None and not self._handle(frames, on_reply):
                    return
        finally:
            if self.timeout_ms != self.path.receipt_ms:
                try:
                    self.sock.setsockopt(zmq.RCVTIMEO, self.path.receipt_ms)
                except zmq.ZMQError:
                    pass

    def _set_timeout(self) -> bool:
        """Set the receive timeout of the next wait; False once the deadline
        has passed.

        :raises NextHost: nothing at all came from the host for the whole
            receipt timeout (it is marked dead).
        """
        path = self.path
        now = time.monotonic()
        deadline = self.out.deadline
        if now >= deadline:
            return False
        if self.taken:
            until = min(deadline, now + IN_FLIGHT_CHECK)
        else:
            heard = max(self.sent_at, path.peers.heard.get(self.endpoint, 0.0))
            until = min(deadline, heard + path.receipt_timeout)
        if until <= now:  # nothing at all from the host for the whole timeout
            why = (f"no receipt from {self.host} within {path.receipt_timeout:g} s, "
                   f"nothing else heard from it")
            path.casts.mark_silent(self.host, why)
            raise NextHost(why)
        # A blocking receive (the GIL is released while it waits), with the
        # connection's usual timeout unless this wait is shorter.
        wait_ms = max(1, int((until - now) * 1000.0))
        wanted = path.receipt_ms if wait_ms >= path.receipt_ms - 50 else wait_ms
        if wanted != self.timeout_ms:
            self.sock.setsockopt(zmq.RCVTIMEO, wanted)
            self.timeout_ms = wanted
        return True

    def _receive(self) -> list[bytes] | None:
        """The next message, or None when the wait timed out.

        :raises TransportError: the driver was closed, the connection
            failed, or the host was marked dead after taking the call.
        """
        try:
            return recv_frames(self.sock, 0)
        except zmq.ZMQError as exc:
            path = self.path
            if path.pool.closed:
                raise TransportError(f"cell {path.peers.cell.name}: the zmq driver was "
                                     f"closed") from None
            if not isinstance(exc, zmq.Again):
                raise TransportError(f"the call to {self.host} failed: {exc}") from None
            if self.taken and path.peers.is_dead(self.host):
                raise TransportError(f"{self.host} stopped answering while the call was "
                                     f"in flight") from None
            return None

    def _handle(self, frames: list[bytes], on_reply: ReplyHandler) -> bool:
        """Take one message from the host; False once nothing more is wanted.

        :raises NextHost: the host refused the call.
        """
        peers = self.path.peers
        peers.heard[self.endpoint] = time.monotonic()
        try:
            kind, seq, envelope = protocol.parse_reply(frames)
        except protocol.Malformed as exc:
            peers.malformed(self.endpoint, str(exc))
            return True
        if seq != self.seq:
            return True  # for an earlier call on this connection that gave up
        if kind == protocol.REPLY:
            if not on_reply(envelope):
                return False
            self.taken = True  # more to come (keepalives, stream items)
        elif kind == protocol.RECEIPT:
            self.taken = True
        elif kind == protocol.REFUSED:
            self.out.refusals += 1
            raise NextHost(f"nobody consumes it on {self.host}")
        else:
            peers.malformed(self.endpoint, f"unknown kind {kind[:8]!r}")
        return True
