"""How a listener hands the requests it read to their servers, on the thread
that read them (leader/follower, see :mod:`rpccore_zmq.leadership`).

Requests read in a round are delivered at its end
(:meth:`Delivery.deliver_later`). A server with worker threads takes that
thread for each request it runs (:meth:`Delivery.release_thread`): the loop
either goes on on another thread at once
(:meth:`~rpccore_zmq.leadership.LeaderFollower.step_down`), or, for a request
expected to be quick while nothing else waits, is lent to it
(:meth:`~rpccore_zmq.leadership.LeaderFollower.lend`). The rest of a batch
follows on the same thread, unless one request runs longer than the
watchman's interval: then the watchman gives what is left to the loop
(:meth:`Delivery.adopt_stuck`), which delivers it on another thread.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable

from rpccore_zmq.leadership import LeaderFollower
from rpccore_zmq.subscription import ZmqIncoming, ZmqSubscription

LOG = logging.getLogger(__name__)

#: A request whose method's recent runs took less than this many seconds is
#: lent the loop rather than handed it (see Delivery.release_thread).
LEND_BELOW = 0.0002

#: Requests to deliver: each with the subscription it goes to.
Deliveries = collections.deque[tuple[ZmqSubscription, ZmqIncoming]]


class _Batch:
    """Requests a thread is delivering, and since when it has been running
    the current one."""

    __slots__ = ("requests", "since", "dry")

    def __init__(self, requests: Deliveries, dry: bool) -> None:
        self.requests = requests
        self.since = 0.0
        #: the batch is one request, and the read found no more input
        self.dry = dry


class Delivery:
    """The requests a listener read, on their way to their servers.

    :param policy: the listener's leader/follower threads.
    """

    def __init__(self, policy: LeaderFollower) -> None:
        self.policy = policy
        self.loop = policy.loop
        #: (the leader) whether no input waits on the listener's socket (if
        #: some does, it has the socket read again): the router's, set by
        #: the listener
        self.socket_quiet: Callable[[], bool] = lambda: True
        #: requests read and not yet handed to their servers
        self._pending: Deliveries = collections.deque()
        #: batches being delivered, by the thread delivering them
        self._batches: dict[threading.Thread, _Batch] = {}
        #: (the leader, the router) the last read emptied the socket (then a
        #: request read alone need not look at the socket again to be lent)
        self.read_dry = False
        policy.add_check(self.adopt_stuck)

    def deliver_later(self, sub: ZmqSubscription, incoming: ZmqIncoming) -> None:
        """(The leader) hand ``incoming`` to ``sub`` at the end of this round."""
        if not self._pending:
            self.policy.defer(self._deliver)
        self._pending.append((sub, incoming))

    def release_thread(self, expected: float | None) -> bool:
        """(A server, delivered a request on the listener's thread) let the
        thread run it. A request expected to take less than
        :data:`LEND_BELOW` seconds, with nothing else waiting, is lent the
        loop: no other thread is woken unless it runs long after all. Any
        other request first hands the loop to another thread."""
        if expected is not None and expected < LEND_BELOW:
            me = threading.current_thread()
            if me is self.loop.owner and self._quiet(me):
                return self.policy.lend(me)
        return self.policy.step_down()

    def _quiet(self, me: threading.Thread) -> bool:
        """(The leader ``me``) whether nothing else waits: no request behind
        this one in its batch, no input on the socket. (Otherwise the loop
        goes on on another thread at once: reading and running overlap.)"""
        batch = self._batches.get(me)
        if batch is not None:
            if batch.requests:
                return False
            if batch.dry:  # read alone, and the read found nothing after it
                batch.dry = False
                return True
        return self.socket_quiet()

    def _deliver(self) -> None:
        """(Deferred work) hand the requests read in this round to their
        servers, on this thread: a server may keep it to run a request
        (:meth:`release_thread`); the rest of the batch follows on this
        thread, unless the watchman gives it to the loop meanwhile."""
        requests, self._pending = self._pending, collections.deque()
        batch = _Batch(requests, self.read_dry and len(requests) == 1)
        self.read_dry = False
        me = threading.current_thread()
        self._batches[me] = batch
        try:
            while requests:
                try:
                    sub, incoming = requests.popleft()
                except IndexError:  # adopted by the loop meanwhile
                    return
                batch.since = time.monotonic()
                if requests:  # others wait behind this one: watch that it is quick
                    self.policy.watch_on()
                self._hand(sub, incoming)
                if self.policy.lent:  # it ran on the loop's thread (lend)
                    self.policy.take_back(me)
        finally:
            del self._batches[me]

    @staticmethod
    def _hand(sub: ZmqSubscription, incoming: ZmqIncoming) -> None:
        if sub.closed:  # closed since it was read: never reaches the server
            incoming.ack()
            return
        try:
            sub.on_message(incoming)
        except Exception:
            LOG.exception("cell %s: delivering a request for %r failed", sub.cell.name, sub.topic)
            incoming.ack()

    def adopt_stuck(self, now: float) -> bool:
        """(Watchman) requests stuck behind one that runs long on the same
        thread go back to the loop, which delivers them on another; True
        while batches are being delivered."""
        limit = now - self.policy.watch_interval
        for batch in list(self._batches.values()):
            if batch.requests and batch.since < limit:
                self.loop.submit(functools.partial(self._adopt, batch.requests))
        return bool(self._batches)

    def _adopt(self, requests: Deliveries) -> None:
        """(The leader) take over what is left of another thread's batch."""
        self.read_dry = False
        while True:
            try:
                sub, incoming = requests.popleft()
            except IndexError:
                break
            self.deliver_later(sub, incoming)
