"""Leader/follower: the threads of a listener take turns at its event loop.

The loop is a role, not a thread. Work the loop defers to the end of a round
(the server's deliveries, :meth:`LeaderFollower.defer`) may
:meth:`~LeaderFollower.step_down`: the loop passes to a waiting thread (or a
new one) and the thread that read a request keeps running it for as long as
it takes. A request thus runs on the thread that read it, with no hand-off
between threads (waking a worker was most of a quick call's latency), and a
slow one holds up nothing else. A thread that has stepped down waits for its
next turn.

A request expected to be quick need not even cost the wake-up of the next
leader: the loop is *lent* to it (:meth:`LeaderFollower.lend`), and the
thread goes on leading when the request is done
(:meth:`LeaderFollower.take_back`). Should the request run longer than
:attr:`LeaderFollower.watch_interval` after all, the *watchman* thread hands
the loop to another thread then, as :meth:`~LeaderFollower.step_down` would
have. (Measured on the project's 2-core VM, lending raised sequential calls
from 0.39x-0.52x to 0.50x-0.64x of raw REQ/REP, in 5 interleaved pairs out
of 5: see drivers/zmq/README.md, "Performance".)
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable

from rpccore.driverkit import Completion

from rpccore_zmq.eventloop import EventLoop

LOG = logging.getLogger(__name__)

#: The watchman's periodic check of the requests running on the listener's
#: threads, given ``time.monotonic()``; True while there is something to check.
WatchCheck = Callable[[float], bool]


class LeaderFollower:
    """Threads taking turns at running one :class:`EventLoop`.

    :param loop: the loop; its ``owner`` is the thread that leads now.
    """

    #: seconds between two checks of the watchman (see watch_on)
    watch_interval = 0.002
    #: seconds with nothing to check after which the watchman sleeps
    watch_idle = 0.2

    def __init__(self, loop: EventLoop) -> None:
        self.loop = loop
        #: more checks for the watchman (see add_check)
        self._checks: list[WatchCheck] = []
        #: work to run at the end of this round (see defer)
        self._deferred: list[Callable[[], None]] = []
        #: threads waiting for their turn to lead, the latest last
        self._followers: list[Completion[None]] = []
        self._lock = threading.Lock()
        self._threads = itertools.count(1)
        #: when the owner started the request it was lent the loop for
        #: (see lend); 0.0 when the loop is not lent
        self._lent_since = 0.0
        #: whether the watchman is checking (see watch_on)
        self._watching = False
        self._watchman: threading.Thread | None = None
        self._arm = threading.Event()
        self._started = False

    def start(self) -> None:
        """Start the first leader (once; later calls do nothing)."""
        with self._lock:
            if not self._started:
                self._started = True
                self._spawn(self.loop.name)

    def add_check(self, check: WatchCheck) -> None:
        """Have the watchman also call ``check`` (see :meth:`watch_on`)."""
        self._checks.append(check)

    # -- the leader's deferred work --------------------------------------------

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

    def lend(self, me: threading.Thread) -> bool:
        """(Deferred work, on thread ``me``) run a request expected to be
        quick on this thread without giving up the loop: call
        :meth:`take_back` when it is done. Should it run longer than
        :attr:`watch_interval`, the watchman hands the loop to another
        thread meanwhile (as :meth:`step_down` does), so the request may
        still take as long as it likes.

        :returns: True (the request may run), False when the loop is stopping.
        """
        loop = self.loop
        if me is not loop.owner:
            return True
        if not loop.running:
            return False
        self._lent_since = time.monotonic()
        loop.lent = True
        self.watch_on()
        return True

    def take_back(self, me: threading.Thread) -> bool:
        """(The thread ``me`` of a request the loop was lent to, once it is
        done) go on leading; False when the watchman has handed the loop
        over meanwhile (or it was not lent)."""
        with self._lock:
            if not self._lent_since or me is not self.loop.owner:
                return False
            self._lent_since = 0.0
            self.loop.lent = False
            return True

    @property
    def lent(self) -> bool:
        """Whether the loop is lent to a request right now."""
        return bool(self._lent_since)

    # -- threads -----------------------------------------------------------------

    def _hand_over(self) -> bool:
        """(With the lock held) give the loop to the follower that went idle
        last (the warmest), or to a new thread; False when no thread can be
        started (the caller then keeps or restores the loop)."""
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
            self._arm.set()  # the watchman leaves too

    # -- the watchman ----------------------------------------------------------

    def watch_on(self) -> None:
        """(Any thread) have the watchman check every :attr:`watch_interval`
        seconds on the request the loop is lent to and on the checks of
        :meth:`add_check`, until there was nothing to check for
        :attr:`watch_idle` seconds."""
        if self._watching:
            return
        with self._lock:
            arm, self._watching = not self._watching, True
            if arm and self._watchman is None:
                self._watchman = threading.Thread(target=self._watch, daemon=True,
                                                  name=f"{self.loop.name}-watchman")
                self._watchman.start()
        if arm:
            self._arm.set()

    def _watch(self) -> None:
        idle_since = time.monotonic()
        stopped = self.loop.stopped
        while not stopped.is_set():
            if not self._watching:
                self._arm.wait()
                self._arm.clear()
                idle_since = time.monotonic()
                continue
            time.sleep(self.watch_interval)
            now = time.monotonic()
            if self._check(now):
                idle_since = now
            elif now - idle_since > self.watch_idle:
                with self._lock:
                    self._watching = False
                # armed again meanwhile (its flag was seen set): look again
                if self._lent_since or self._check(now):
                    self.watch_on()

    def _check(self, now: float) -> bool:
        """(Watchman) one round of checks; True while there is something to
        check."""
        try:
            busy = self._take_from_lender(now)
            for check in self._checks:
                busy = check(now) or busy
            return busy
        except Exception:
            LOG.exception("%s: the watchman's check failed", self.loop.name)
            return False

    def _take_from_lender(self, now: float) -> bool:
        """(Watchman) hand the loop over if the request it was lent to has
        run longer than :attr:`watch_interval`; True while it is lent."""
        if not self._lent_since:
            return False
        with self._lock:
            since = self._lent_since
            if not since or since > now - self.watch_interval:
                return bool(since)
            lender = self.loop.owner
            self._lent_since = 0.0
            self.loop.lent = False
            if self._hand_over():
                return False
            # no thread could take it: it stays with the request
            self.loop.owner, self._lent_since, self.loop.lent = lender, since, True
            return True
