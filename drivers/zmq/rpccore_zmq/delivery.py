"""How a server's loop hands the requests it read to their servers
(leader/follower, see :mod:`rpccore_zmq.loop`).

Requests read in a round are delivered at its end, on the thread that read
them (:meth:`DeliveryLoop.deliver_later`). A server with worker threads takes
that thread for each request it runs (:meth:`DeliveryLoop.release_thread`):
the loop either goes on on another thread at once
(:meth:`~rpccore_zmq.loop.SocketLoop.step_down`), or, for a request expected
to be quick while nothing else waits, is lent to it
(:meth:`~rpccore_zmq.loop.SocketLoop.lend`). The rest of a batch follows on
the same thread, unless one request runs longer than ``watch_interval``: then
the watchman gives what is left to the loop (:meth:`DeliveryLoop.on_watch`).
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from typing import Any

import zmq

from rpccore_zmq.frames import LockedSocket
from rpccore_zmq.loop import SocketLoop
from rpccore_zmq.subscription import ZmqIncoming, ZmqSubscription

LOG = logging.getLogger(__name__)

#: A request whose method's recent runs took less than this many seconds is
#: lent the loop rather than handed it (see DeliveryLoop.release_thread).
LEND_BELOW = 0.0002

#: Requests to deliver: each with the subscription it goes to.
Deliveries = collections.deque[tuple[ZmqSubscription, ZmqIncoming]]


class DeliveryLoop(SocketLoop):
    """The delivering side of a server's loop; the subclass reads the bound
    socket (:attr:`conn`, :meth:`on_readable`)."""

    def __init__(self, name: str, context: zmq.Context[Any]) -> None:
        super().__init__(name, context)
        #: the bound socket
        self.conn: LockedSocket | None = None
        #: batches of requests being delivered, by the thread delivering them
        self._holders: dict[threading.Thread, _Holder] = {}
        #: requests read and not yet handed to their servers
        self._pending: Deliveries = collections.deque()
        #: the last read found the socket empty after its batch (subclass)
        self._dry = False

    def on_readable(self) -> bool:
        """(Loop thread, subclass) read what :attr:`conn` has; True when
        more input is still waiting."""
        raise NotImplementedError

    def deliver_later(self, sub: ZmqSubscription, incoming: ZmqIncoming) -> None:
        """(Loop thread) hand ``incoming`` to ``sub`` at the end of this round."""
        if not self._pending:
            self.defer(self._deliver)
        self._pending.append((sub, incoming))

    def release_thread(self, expected: float | None) -> bool:
        """(A server, delivered a request on this loop's thread) let the
        thread run it. A request expected to take less than
        :data:`LEND_BELOW` seconds is lent the loop: no other thread is woken
        unless it runs past ``watch_interval`` after all
        (:meth:`~rpccore_zmq.loop.SocketLoop.lend`). Any other request first
        hands the loop to another thread
        (:meth:`~rpccore_zmq.loop.SocketLoop.step_down`)."""
        if expected is not None and expected < LEND_BELOW:
            me = threading.current_thread()
            if me is self._owner and self._quiet(me):
                return self.lend(me)
        return self.step_down()

    def _quiet(self, me: threading.Thread) -> bool:
        """(The loop's thread ``me``) whether nothing else waits: no request
        behind this one in its batch, no input on the socket. (Otherwise the
        loop goes on on another thread at once: reading and running overlap.)"""
        holder = self._holders.get(me)
        if holder is not None:
            if holder.batch:
                return False
            if holder.dry:  # read alone, and the read found nothing after it
                holder.dry = False
                return True
        conn = self.conn
        if conn is None:
            return True
        with conn.lock:
            if not conn.readable():
                return True
        self.mark_hot(self.on_readable)  # that check may have taken the signal
        return False

    def _deliver(self) -> None:
        """(Deferred work) hand the requests read in this round to their
        servers, on this thread: a server may keep it to run a request
        (:meth:`release_thread`); the rest of the batch follows on this
        thread, unless one request runs longer than ``watch_interval``: then
        the watchman gives what is left to the loop (:meth:`on_watch`)."""
        batch, self._pending = self._pending, collections.deque()
        holder = _Holder(batch)
        # a request read alone need not look at the socket again to be lent
        holder.dry, self._dry = self._dry and len(batch) == 1, False
        me = threading.current_thread()
        self._holders[me] = holder
        try:
            while True:
                try:
                    sub, incoming = batch.popleft()
                except IndexError:
                    return
                if sub.closed:  # closed since it was read: never reaches the server
                    incoming.ack()
                    continue
                holder.since = time.monotonic()
                if batch:  # others wait behind this one: watch that it is quick
                    self.watch_on()
                try:
                    sub.on_message(incoming)
                except Exception:
                    LOG.exception("cell %s: delivering a request for %r failed",
                                  sub.cell.name, sub.topic)
                    incoming.ack()
                if self._lent_since:  # it ran on the loop's thread (lend)
                    self.take_back(me)
        finally:
            del self._holders[me]

    def on_watch(self, now: float) -> bool:
        """Requests stuck behind one that runs long on the same thread go
        back to the loop, which delivers them on another."""
        limit = now - self.watch_interval
        for holder in list(self._holders.values()):
            if holder.batch and holder.since < limit:
                self.submit(functools.partial(self._adopt, holder.batch))
        return bool(self._holders)

    def _adopt(self, batch: Deliveries) -> None:
        """(Loop thread) take over what is left of another thread's batch."""
        self._dry = False
        while True:
            try:
                sub, incoming = batch.popleft()
            except IndexError:
                break
            self.deliver_later(sub, incoming)


class _Holder:
    """A batch of requests a thread is delivering, and since when it has
    been running the current one."""

    __slots__ = ("batch", "since", "dry")

    def __init__(self, batch: Deliveries) -> None:
        self.batch = batch
        self.since = 0.0
        #: the batch is one request, and the read found no more input
        self.dry = False
