"""Leader/follower: the threads of a listener take turns at its event loop.

The loop is a role, not a thread. Work the loop defers to the end of a round
(the server's deliveries, :meth:`LeaderFollower.defer`) may
:meth:`~LeaderFollower.step_down`: the loop passes to a waiting thread (or a
new one) and the thread that read a request keeps running it for as long as
it takes. A request thus runs on the thread that read it, with no hand-off
between threads (waking a worker was most of a quick call's latency), and a
slow one holds up nothing else. A thread that has stepped down waits for its
next turn.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
from collections.abc import Callable

from rpccore.driverkit import Completion
from rpccore_zmq.eventloop import EventLoop

LOG = logging.getLogger(__name__)


class LeaderFollower:
    """Threads taking turns at running one :class:`EventLoop`.

    :param loop: the loop; its ``owner`` is the thread that leads now.
    """

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        #: work to run at the end of this round (see defer)
        self._deferred: list[Callable[[], None]] = []
        #: threads waiting for their turn to lead, the latest last
        self._followers: list[Completion[None]] = []
        self._lock = threading.Lock()
        self._threads = itertools.count(1)
        self._started = False

    def start(self) -> None:
        """Start the first leader (once; later calls do nothing)."""
        with self._lock:
            if not self._started:
                self._started = True
                self._spawn(self.loop.name)

    def defer(self, work: Callable[[], None]) -> None:
        """(The leader) run ``work`` at the end of this round, once the
        loop's own work is done: ``work`` may :meth:`step_down` and then run
        for as long as it likes. (Only deferred work may step down: a thread
        that steps down must not be in the middle of the loop's own work.)"""
        self._deferred.append(work)

    def step_down(self) -> bool:
        """(Deferred work) let another thread lead from now on, so that this
        one can run a request for as long as it takes.

        :returns: True when the calling thread no longer leads (it did not,
            or it handed the loop over); False when the loop is stopping.
        """
        me = threading.current_thread()
        loop = self.loop
        if me is not loop.owner:
            return True
        if not loop.running:
            return False
        with self._lock:
            if self._hand_over():
                return True
            loop.owner = me  # no thread could take it: it keeps the loop
            return False

    def _hand_over(self) -> bool:
        """(With the lock held) give the loop to the follower that went idle
        last (the warmest), or to a new thread; False when no thread can be
        started (the caller then keeps the loop)."""
        self.loop.owner = None
        if self._followers:
            self._followers.pop().set_result(None)
            return True
        try:
            self._spawn(f"{self.loop.name}-{next(self._threads)}")
        except RuntimeError as exc:  # no more threads
            LOG.warning("%s: cannot start a thread to take over the loop: %s",
                        self.loop.name, exc)
            return False
        return True

    def _spawn(self, name: str) -> None:
        threading.Thread(target=self._serve, daemon=True, name=name).start()

    def _serve(self) -> None:
        """A thread of the listener: lead; after stepping down to run
        deferred work, follow (wait for a turn to lead again)."""
        stopped = self.loop.stopped
        while self._lead():
            turn: Completion[None] = Completion()
            with self._lock:
                if stopped.is_set():
                    return
                self._followers.append(turn)
            turn.wait()
            if stopped.is_set():
                return

    def _lead(self) -> bool:
        """Lead until the loop stops (False) or this thread steps down and
        has run its deferred work (True)."""
        me = threading.current_thread()
        loop = self.loop
        loop.owner = me
        try:
            while loop.running:
                loop.run_round()
                if self._deferred and self._run_deferred(me):
                    return True
        except BaseException:
            LOG.exception("%s: the I/O loop failed", loop.name)
        self._finish()
        return False

    def _run_deferred(self, me: threading.Thread) -> bool:
        """Run this round's deferred work; True once this thread no longer
        leads (what it did not run yet goes to the new leader)."""
        work, self._deferred = self._deferred, []
        for index, item in enumerate(work):
            if self.loop.owner is not me:
                for rest in work[index:]:
                    self.loop.submit(functools.partial(self.defer, rest))
                return True
            try:
                item()
            except Exception:
                LOG.exception("%s: deferred work failed", self.loop.name)
        return self.loop.owner is not me

    def _finish(self) -> None:
        """(The last leader) close everything and release the followers."""
        try:
            self.loop.finish()
        finally:
            with self._lock:
                followers, self._followers = self._followers, []
            for follower in followers:
                follower.set_result(None)
