"""Calls: sent and answered on the thread that makes them, like a plain
REQ/REP round trip, without a hand-off to the client's I/O thread and back
(each one a thread switch, the largest cost of a call).

A :class:`CallPool` keeps idle DEALER connections per peer endpoint. A caller
takes one for the duration of one call (nobody else uses it meanwhile, so no
lock is held while waiting) and gives it back. A reply that arrives after its
call gave up is recognised by its sequence number and skipped by the next
call on that connection. :class:`Caller` runs a call on such a connection
with the failover, refusal and dead-host rules of
:class:`rpccore_zmq.client.ClientLoop`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import zmq

from rpccore.driver import ReplyHandler
from rpccore.errors import TransportError
from rpccore_zmq import protocol
from rpccore_zmq.busywait import BusyWait
from rpccore_zmq.frames import recv_frames, send_frame
from rpccore_zmq.losses import failure
from rpccore_zmq.peer import Outgoing

if TYPE_CHECKING:
    from rpccore_zmq.client import ClientLoop

#: Idle connections kept per peer endpoint (more are made while more threads
#: call that peer at once, and closed when given back).
IDLE_PER_ENDPOINT = 8
#: Seconds between checks, while a call that a host has taken waits for its
#: reply, of whether that host has been marked dead meanwhile.
IN_FLIGHT_CHECK = 0.25


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


class _NextHost(Exception):
    """(Internal) this host did not take the call: try the next one."""


class Caller:
    """Runs calls for one :class:`~rpccore_zmq.client.ClientLoop`, on the
    calling threads, over connections from its own :class:`CallPool`."""

    def __init__(self, client: ClientLoop) -> None:
        self.client = client
        self.receipt_timeout = client.receipt_timeout
        #: a call connection's usual receive timeout
        self.receipt_ms = max(1, int(client.receipt_timeout * 1000))
        self.pool = CallPool(self._new_socket, client.max_peers)
        wait_us = client.cell.options.zmq_busy_wait_us
        #: polls for quick replies (zmq_busy_wait_us), None when off
        self.busy = BusyWait(wait_us / 1e6) if wait_us else None

    def _new_socket(self, endpoint: str) -> zmq.Socket[Any]:
        sock = self.client.new_socket(endpoint)
        sock.setsockopt(zmq.RCVTIMEO, self.receipt_ms)
        return sock

    def call(self, out: Outgoing, on_reply: ReplyHandler) -> None:
        """Send the call ``out`` and hand its replies to ``on_reply``, reading
        while it says more are wanted (keepalives, stream items) and until
        ``out.deadline``; fail over as :meth:`ClientLoop.send` does.

        :raises Undeliverable: every host refused it.
        :raises TransportError: no host took it, or the one that did stopped
            answering, or the driver was closed.
        """
        client = self.client
        while True:
            host = client.next_host(out)
            if host is None:
                raise failure(out)
            if client.casts_in_flight(host):
                self._call_in_order(out, on_reply)
                return
            if out.tried:
                client.cell.stats.incr("zmq_rerouted")
            out.tried.append(host)
            try:
                endpoint = client.endpoint_of(host)
            except ValueError as exc:
                out.why = str(exc)
                continue
            try:
                sock = self.pool.take(endpoint)
            except zmq.ZMQError as exc:  # out of file descriptors, say
                raise TransportError(f"cannot open a connection to {host}: {exc}") from None
            reusable = True
            busy = self.busy
            try:
                if busy is None:
                    self._exchange(sock, endpoint, host, out, on_reply)
                else:
                    alone = busy.enter()
                    try:
                        self._exchange(sock, endpoint, host, out, on_reply,
                                       busy.budget(endpoint) if alone else 0.0)
                    finally:
                        busy.leave()
            except _NextHost:
                reusable = False
                continue
            except BaseException:
                reusable = False
                raise
            finally:
                self.pool.give(endpoint, sock, reusable)
            return

    def _call_in_order(self, out: Outgoing, on_reply: ReplyHandler) -> None:
        """A call that follows casts to its host still in flight: sent on the
        same connection as they were, so that it arrives after them; the
        client's loop reads its first reply, and hands any later ones (of
        the same sequence number) to the cell's handler."""
        out.wait_for_it()
        assert out.done is not None
        self.client.send(out)
        if not out.done.wait_until(out.deadline):
            return
        reply = out.done.result(0)
        if reply is not None:
            on_reply(reply)

    def _exchange(self, sock: zmq.Socket[Any], endpoint: str, host: str,
                  out: Outgoing, on_reply: ReplyHandler, busy_wait: float = 0.0) -> None:
        """One try of a call on ``sock``: returns once ``on_reply`` wants no
        more replies, or when the deadline passed. ``busy_wait``: seconds to
        poll for the reply before sleeping.

        :raises _NextHost: refused, unsendable, or nothing heard from the
            host in ``zmq_receipt_timeout`` (the host is then marked dead).
        """
        client = self.client
        seq = next(client.seq)
        try:
            send_frame(sock, protocol.request(out.kind, seq, out.topic, out.host, out.body))
        except zmq.ZMQError as exc:
            out.why = f"sending to {host} failed: {exc}"
            raise _NextHost from None
        sent_at = time.monotonic()
        if busy_wait:
            client.cell.stats.incr("zmq_busy_waits")
            BusyWait.poll(sock, busy_wait)
        heard = client.heard
        taken = False
        answered = False
        timeout_ms = self.receipt_ms  # the connection's receive timeout
        # The first wait, when the deadline is further off than a receipt
        # (nearly always), is the connection's usual timeout as it is.
        first = out.deadline - sent_at >= self.receipt_timeout
        try:
            while True:
                if first:
                    first = False
                else:
                    now = time.monotonic()
                    if now >= out.deadline:
                        return
                    if taken:
                        until = min(out.deadline, now + IN_FLIGHT_CHECK)
                    else:
                        until = min(out.deadline, max(sent_at, heard.get(endpoint, 0.0))
                                    + self.receipt_timeout)
                    if until <= now:  # nothing at all from the host for the whole timeout
                        out.why = (f"no receipt from {host} within {self.receipt_timeout:g} s, "
                                   f"nothing else heard from it")
                        client.submit(lambda: client.mark_silent(host, out.why))
                        raise _NextHost
                    # A blocking receive (the GIL is released while it waits), with
                    # the connection's usual timeout unless this wait is shorter.
                    wait_ms = max(1, int((until - now) * 1000.0))
                    wanted = self.receipt_ms if wait_ms >= self.receipt_ms - 50 else wait_ms
                    if wanted != timeout_ms:
                        sock.setsockopt(zmq.RCVTIMEO, wanted)
                        timeout_ms = wanted
                try:
                    frames = recv_frames(sock, 0)
                except zmq.ZMQError as exc:
                    if self.pool.closed:
                        raise TransportError(f"cell {client.cell.name}: the zmq driver was "
                                             f"closed") from None
                    if not isinstance(exc, zmq.Again):
                        raise TransportError(f"the call to {host} failed: {exc}") from None
                    if taken and client.is_dead(host):
                        raise TransportError(f"{host} stopped answering while the call was "
                                             f"in flight") from None
                    continue
                heard[endpoint] = time.monotonic()
                try:
                    kind, got, envelope = protocol.parse_reply(frames)
                except protocol.Malformed as exc:
                    client.malformed_from(endpoint, str(exc))
                    continue
                if got != seq:
                    continue  # for an earlier call on this connection that gave up
                if kind == protocol.REPLY:
                    if self.busy is not None and not answered:
                        self.busy.record(endpoint, time.monotonic() - sent_at)
                    if not on_reply(envelope):
                        return
                    answered = taken = True  # more to come (keepalives, stream items)
                elif kind == protocol.RECEIPT:
                    taken = True
                elif kind == protocol.REFUSED:
                    out.refusals += 1
                    out.why = f"nobody consumes it on {host}"
                    raise _NextHost
                else:
                    client.malformed_from(endpoint, f"unknown kind {kind[:8]!r}")
        finally:
            if timeout_ms != self.receipt_ms:
                try:
                    sock.setsockopt(zmq.RCVTIMEO, self.receipt_ms)
                except zmq.ZMQError:
                    pass
