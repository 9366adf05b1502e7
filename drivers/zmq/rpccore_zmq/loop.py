"""The I/O threads that drive ZMQ sockets.

Each side of the driver (client connections, the server's bound socket) runs
one :class:`SocketLoop`: a thread that waits for input, runs commands other
threads hand it with :meth:`SocketLoop.submit` (a queue plus one byte written
to a wake-up pipe) and does periodic work.

The loop never waits on a ZMQ socket itself, only on its ``ZMQ_FD``, a plain
file descriptor, so that other threads can use the socket meanwhile (see
:mod:`rpccore_zmq.frames`). That descriptor is edge-triggered (any use of the
socket may consume the signal), so after each use the user checks
``ZMQ_EVENTS``: a thread that finds input waiting pokes the loop, and the
loop keeps reading a socket until ``ZMQ_EVENTS`` shows none.

The loop is a role, not a thread (leader/follower): work the loop defers to
the end of a round (the server's deliveries) may :meth:`SocketLoop.step_down`,
handing the loop to a waiting thread (or a new one) and keeping its own thread
to run a request for as long as the request takes. So a request runs on the
thread that read it, with no hand-off between threads (the wake-up of a worker
was most of a quick call's latency), and a slow one holds up nothing else. A
thread that has stepped down waits for its next turn.

A request expected to be quick need not even cost the wake-up of the next
leader: the loop is *lent* to it (:meth:`SocketLoop.lend`), and the thread goes
on running the loop when the request is done (:meth:`SocketLoop.take_back`).
Should the request run longer than :attr:`SocketLoop.watch_interval`, the
watchman thread hands the loop to another thread then, as
:meth:`~SocketLoop.step_down` would have.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import select
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import zmq

from rpccore.driverkit import Completion, Mailbox
from rpccore.errors import TransportError

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: Reads what a socket has; returns True when more input is still waiting.
SocketHandler = Callable[[], bool]

#: Commands run per round of the loop before it polls its sockets again.
_COMMANDS_PER_ROUND = 256


def _nothing() -> bool:
    """A handler that keeps the loop from sleeping for one round."""
    return False


class LoopStopped(TransportError):
    """The I/O thread has stopped; the command will never run."""


class SocketLoop:
    """One I/O loop polling sockets, running submitted commands and a
    periodic :meth:`on_tick`, on one thread at a time ("the loop thread":
    the one that last took over, see :meth:`step_down`).

    Subclasses register sockets with :meth:`watch` (from the loop thread) and
    implement :meth:`on_tick` and :meth:`on_stop`.
    """

    tick_interval = 0.05

    def __init__(self, name: str, context: zmq.Context[Any]) -> None:
        self.context = context
        self.name = name
        #: commands other threads hand the loop (see submit)
        self._commands: Mailbox[Callable[[], None]] = Mailbox()
        self._read_fd = self._commands.fileno()
        # Only plain descriptors are watched (a ZMQ socket's ZMQ_FD, the
        # mailbox's wake-up), so the C library's poll() does, without
        # zmq_poll's per-call set-up of every item.
        self._poller = select.poll()
        self._poller.register(self._read_fd, select.POLLIN)
        self._handlers: dict[int, SocketHandler] = {}
        self._hot: list[SocketHandler] = []
        self._running = True
        #: when to call on_wake() (math.inf: not needed)
        self.wake_at = math.inf
        self._next_tick = 0.0
        #: the thread that runs the loop now (see step_down)
        self._owner: threading.Thread | None = None
        #: when the owner started a request on the loop's thread (see lend);
        #: 0.0 when it is not running one
        self._lent_since = 0.0
        #: work to run at the end of this round (see defer)
        self._deferred: list[Callable[[], None]] = []
        #: threads waiting to take over the loop, each on a lock of its own
        self._followers: list[threading.Lock] = []
        self._followers_lock = threading.Lock()
        self._threads = itertools.count(1)
        #: whether the watchman thread is checking on the loop (see watch_on)
        self._watching = False
        self._watchman: threading.Thread | None = None
        self._arm = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._start_lock = threading.Lock()

    # -- any thread ---------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self._spawn(self.name)

    @property
    def alive(self) -> bool:
        """Whether the loop is running (started and not stopped)."""
        return self._started and not self._stopped.is_set()

    @property
    def in_loop(self) -> bool:
        """Whether the calling thread runs the loop now (a thread the loop is
        lent to is not in it while it runs the request: it may lose the loop
        at any time, see :meth:`lend`)."""
        return threading.current_thread() is self._owner and not self._lent_since

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the loop thread soon. Never blocks."""
        self._commands.put(command)

    def run_sync(self, command: Callable[[], T], timeout: float) -> T:
        """Run ``command`` on the loop thread and return its result.

        :raises TimeoutError: it did not complete in ``timeout`` seconds.
        :raises LoopStopped: the thread stopped before running it.
        :raises: whatever ``command`` raised.
        """
        if self.in_loop:
            return command()
        done: Completion[T] = Completion()

        def run() -> None:
            if done.done:  # given up on (the loop stopped)
                return
            try:
                done.set_result(command())
            except BaseException as exc:
                done.set_error(exc)

        self.submit(run)
        end = time.monotonic() + timeout
        while not done.wait(min(0.1, max(0.0, end - time.monotonic()))):
            if self._stopped.is_set() and done.set_error(LoopStopped(f"{self.name} has stopped")):
                break
            if time.monotonic() >= end:
                raise TimeoutError(f"{self.name} did not answer in {timeout:g} s")
        return done.result(0)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; :meth:`on_stop` closes the sockets. Idempotent."""
        def halt() -> None:
            self._running = False
        self.submit(halt)
        if self._started and not self.in_loop:
            if not self._stopped.wait(timeout):
                LOG.warning("%s: I/O thread did not stop within %.1f s", self.name, timeout)
        if not self._started:
            self._commands.close()

    # -- loop thread ----------------------------------------------------------

    def poke(self, handler: SocketHandler) -> None:
        """(Any thread) run ``handler`` on the loop soon: input is waiting."""
        me = threading.current_thread()
        if me is self._owner:  # in the loop, or lent it: before it next sleeps
            self._hot.append(handler)
            if me is self._owner:
                return
        # (if the loop was taken from this thread meanwhile, its new thread
        # may be asleep already: wake it)
        self.submit(lambda: self.mark_hot(handler))

    def watch(self, fd: int, handler: SocketHandler) -> None:
        """Call ``handler`` whenever ``fd`` (a ZMQ socket's ``ZMQ_FD``) is
        readable. It is edge-triggered: ``handler`` must read until
        ``ZMQ_EVENTS`` shows no input (or return True to be called again)."""
        self._poller.register(fd, select.POLLIN)
        self._handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def mark_hot(self, handler: SocketHandler) -> None:
        """(Loop thread) run ``handler`` again before sleeping."""
        self._hot.append(handler)

    def on_tick(self, now: float) -> None:
        """Called about every :attr:`tick_interval` seconds."""

    def on_wake(self, now: float) -> None:
        """(Loop thread) called once :attr:`wake_at` (set by the subclass, a
        ``time.monotonic()`` value) has passed."""

    def on_stop(self) -> None:
        """Called on the loop thread when it stops: close sockets here."""

    def _drain_commands(self, limit: int = 0) -> bool:
        """Run queued commands, at most ``limit`` of them (0: all); True
        when some are left."""
        commands = self._commands.take(limit)
        for command in commands:
            try:
                command()
            except Exception:
                LOG.exception("%s: a command failed", self.name)
        return bool(limit) and len(commands) == limit and len(self._commands) > 0

    # -- leader/follower -----------------------------------------------------

    def defer(self, work: Callable[[], None]) -> None:
        """(Loop thread) run ``work`` at the end of this round, once the
        loop's own work is done: ``work`` may :meth:`step_down` and then run
        for as long as it likes. (Only deferred work may step down: a thread
        that steps down must not be in the middle of the loop's own work.)"""
        self._deferred.append(work)

    #: seconds between two checks of the watchman (see watch_on)
    watch_interval = 0.002
    #: seconds with nothing to check after which the watchman sleeps
    watch_idle = 0.2

    def watch_on(self) -> None:
        """(Any thread) have the watchman thread call :meth:`on_watch` every
        :attr:`watch_interval` seconds, until it has said there is nothing
        to check for :attr:`watch_idle` seconds."""
        if self._watching:
            return
        with self._followers_lock:
            arm, self._watching = not self._watching, True
            if arm and self._watchman is None:
                self._watchman = threading.Thread(target=self._watch, daemon=True,
                                                  name=f"{self.name}-watchman")
                self._watchman.start()
        if arm:
            self._arm.set()

    def on_watch(self, now: float) -> bool:
        """(Watchman thread) a subclass's periodic check on the threads that
        run requests; True while there is something to check."""
        return False

    def _watch(self) -> None:
        idle_since = time.monotonic()
        while not self._stopped.is_set():
            if not self._watching:
                self._arm.wait()
                self._arm.clear()
                idle_since = time.monotonic()
                continue
            time.sleep(self.watch_interval)
            now = time.monotonic()
            try:
                busy = self._take_from_lender(now)
                busy = self.on_watch(now) or busy
            except Exception:
                LOG.exception("%s: the watchman's check failed", self.name)
                busy = False
            if busy:
                idle_since = now
            elif now - idle_since > self.watch_idle:
                with self._followers_lock:
                    self._watching = False
                # armed again meanwhile (its flag was seen set): look again
                if self._lent_since or self.on_watch(now):
                    self.watch_on()

    def lend(self, me: threading.Thread) -> bool:
        """(Deferred work, on thread ``me``) run a request expected to be
        quick on this thread without giving up the loop: call
        :meth:`take_back` when it is done. Should it run longer
        than :attr:`watch_interval`, the watchman hands the loop to another
        thread meanwhile (as :meth:`step_down` does), so the request may
        still take as long as it likes.

        :returns: True (the request may run), False when the loop is stopping.
        """
        if me is not self._owner:
            return True
        if not self._running:
            return False
        self._lent_since = time.monotonic()
        self.watch_on()
        return True

    def take_back(self, me: threading.Thread) -> bool:
        """(The thread ``me`` of a request the loop was lent to, once it is
        done) go on running the loop; False when the watchman has handed it
        over meanwhile (or it was not lent)."""
        with self._followers_lock:
            if not self._lent_since or me is not self._owner:
                return False
            self._lent_since = 0.0
            return True

    def _take_from_lender(self, now: float) -> bool:
        """(Watchman) hand the loop over if the request it was lent to has
        run longer than :attr:`watch_interval`; True while it is lent."""
        if not self._lent_since:
            return False
        with self._followers_lock:
            since = self._lent_since
            if not since or since > now - self.watch_interval:
                return bool(since)
            lender = self._owner
            self._lent_since = 0.0
            if self._hand_over():
                return False
            self._owner, self._lent_since = lender, since  # it waits for the request
            return True

    def step_down(self) -> bool:
        """(Deferred work) let another thread run the loop from now on, so
        that this one can run a request for as long as it takes (the
        leader/follower pattern: no hand-off of the request between threads).

        :returns: True when the calling thread no longer runs the loop (it
            did not, or it handed it over); False when the loop is stopping.
        """
        me = threading.current_thread()
        if me is not self._owner:
            return True
        if not self._running:
            return False
        with self._followers_lock:
            if self._hand_over():
                return True
            self._owner = me  # it keeps the loop
            return False

    def _hand_over(self) -> bool:
        """(With the followers' lock held) give the loop to the follower that
        went idle last (the warmest), or to a new thread; False when no thread
        can be started (the caller then keeps or restores the loop)."""
        self._owner = None
        if self._followers:
            self._followers.pop().release()
            return True
        try:
            self._spawn(f"{self.name}-{next(self._threads)}")
        except RuntimeError as exc:  # no more threads
            LOG.warning("%s: cannot start a thread to take over the loop: %s", self.name, exc)
            return False
        return True

    def _spawn(self, name: str) -> None:
        threading.Thread(target=self._serve, daemon=True, name=name).start()

    def _serve(self) -> None:
        """A thread of the loop: lead; after stepping down to run deferred
        work, follow (wait for a turn to lead again)."""
        while True:
            if not self._lead():
                return
            turn = threading.Lock()
            turn.acquire()
            with self._followers_lock:
                if self._stopped.is_set():
                    return
                self._followers.append(turn)
            turn.acquire()
            if self._stopped.is_set():
                return

    def _lead(self) -> bool:
        """Run the loop until it stops (False) or this thread steps down and
        has run its deferred work (True)."""
        me = threading.current_thread()
        self._owner = me
        try:
            while self._running:
                self._round()
                if not self._deferred:
                    continue
                work, self._deferred = self._deferred, []
                for index, item in enumerate(work):
                    if self._owner is not me:  # the rest is for the loop's new thread
                        for rest in work[index:]:
                            self.submit(functools.partial(self.defer, rest))
                        return True
                    try:
                        item()
                    except Exception:
                        LOG.exception("%s: deferred work failed", self.name)
                if self._owner is not me:
                    return True
        except BaseException:
            LOG.exception("%s: the I/O loop failed", self.name)
        self._finish_loop()
        return False

    def _finish_loop(self) -> None:
        """(The last leader) close everything and release the followers."""
        try:
            self._drain_commands()
            try:
                self.on_stop()
            except Exception:
                LOG.exception("%s: closing sockets failed", self.name)
        finally:
            self._commands.close()
            with self._followers_lock:
                self._stopped.set()
                followers, self._followers = self._followers, []
            for follower in followers:
                follower.release()
            self._arm.set()  # the watchman leaves too

    def _round(self) -> None:
        """Wait for input (or the next timer), then handle the sockets that
        have some, queued commands and timers."""
        if not self._next_tick:
            self._next_tick = time.monotonic() + self.tick_interval
        handlers = self._handlers
        read_fd = self._read_fd
        commands = self._commands
        timeout = 0.0 if self._hot else max(
            0.0, min(self._next_tick, self.wake_at) - time.monotonic())
        if timeout and not commands.sleeping():
            timeout = 0.0  # commands came meanwhile
        ready, self._hot = self._hot, []
        woken = False
        for sock, _ in self._poller.poll(math.ceil(timeout * 1000.0)):
            if sock == read_fd:
                woken = True
                continue
            handler = handlers.get(sock)
            if handler is not None:
                ready.append(handler)
        commands.woken(woken)
        for handler in dict.fromkeys(ready):
            try:
                if handler():
                    self._hot.append(handler)
            except Exception:
                LOG.exception("%s: handling a socket failed", self.name)
        # bounded, so that sockets are read between long bursts
        if self._drain_commands(_COMMANDS_PER_ROUND):
            self._hot.append(_nothing)
        now = time.monotonic()
        if now >= self.wake_at:
            self.wake_at = math.inf
            try:
                self.on_wake(now)
            except Exception:
                LOG.exception("%s: delayed work failed", self.name)
        if now >= self._next_tick:
            self._next_tick = now + self.tick_interval
            try:
                self.on_tick(now)
            except Exception:
                LOG.exception("%s: periodic work failed", self.name)
