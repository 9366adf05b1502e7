"""How a listener hands the requests it read to their servers, on the thread
that read them (leader/follower, see :mod:`rpccore_zmq.leadership`).

Requests read in a round are delivered at its end, one after the other, on
the thread that read them (:meth:`Delivery.deliver_later`). A server with
worker threads that runs a request there first lets another thread lead
(:meth:`Delivery.release_thread`): the loop goes on at once, and the request
may take as long as it likes. What is left of the batch stays with this
thread only when the request is known to be quick (its method's recent runs
took under :data:`QUICK`): a burst of quick casts costs one hand-over of the
loop, not one per cast. Before any other request, the rest of the batch goes
back to the loop, which delivers it on another thread, so that nothing
waits behind a request that may block.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading

from rpccore_zmq.leadership import LeaderFollower
from rpccore_zmq.subscription import ZmqIncoming, ZmqSubscription

LOG = logging.getLogger(__name__)

#: A request whose method's recent runs took less than this many seconds
#: keeps the rest of its batch on its thread (see Delivery.release_thread).
QUICK = 0.0002

#: Requests to deliver: each with the subscription it goes to.
Deliveries = collections.deque[tuple[ZmqSubscription, ZmqIncoming]]


class Delivery:
    """The requests a listener read, on their way to their servers.

    :param policy: the listener's leader/follower threads.
    """

    def __init__(self, policy: LeaderFollower) -> None:
        self.policy = policy
        self.loop = policy.loop
        #: requests read and not yet handed to their servers
        self._pending: Deliveries = collections.deque()
        #: what is left of the batch each thread is delivering
        self._batches: dict[threading.Thread, Deliveries] = {}

    def deliver_later(self, sub: ZmqSubscription, incoming: ZmqIncoming) -> None:
        """(The leader) hand ``incoming`` to ``sub`` at the end of this round."""
        if not self._pending:
            self.policy.defer(self._deliver)
        self._pending.append((sub, incoming))

    def release_thread(self, expected: float | None) -> bool:
        """(A server, delivered a request on a listener thread) let the
        thread run it: another thread leads from now on, and the rest of the
        batch goes with the loop unless this request is known to be quick."""
        if expected is None or expected >= QUICK:
            me = threading.current_thread()
            rest = self._batches.get(me)
            if rest:
                self._batches[me] = collections.deque()
                self.loop.submit(functools.partial(self._adopt, rest))
        return self.policy.step_down()

    def _deliver(self) -> None:
        """(Deferred work) hand the requests read in this round to their
        servers, on this thread (see the module docstring)."""
        me = threading.current_thread()
        self._batches[me], self._pending = self._pending, collections.deque()
        try:
            while True:
                batch = self._batches[me]  # (release_thread may empty it)
                if not batch:
                    return
                self._hand(*batch.popleft())
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

    def _adopt(self, requests: Deliveries) -> None:
        """(The leader) take over what is left of another thread's batch."""
        for sub, incoming in requests:
            self.deliver_later(sub, incoming)
