"""The event loop both sides of the driver run their sockets on.

An :class:`EventLoop` waits for input on file descriptors, runs the commands
other threads hand it (:meth:`EventLoop.submit`, through a
:class:`~rpccore.driverkit.Mailbox`) and calls its owner's periodic work. It
runs on one thread at a time, its *owner*: the client's I/O thread
(:meth:`EventLoop.run`), or whichever of a listener's threads leads now
(:mod:`rpccore_zmq.leadership`, which calls :meth:`EventLoop.run_round`).

The loop never waits inside a ZMQ socket, only on its ``ZMQ_FD``, a plain
file descriptor, so that other threads can use the socket meanwhile (see
:mod:`rpccore_zmq.frames`). That descriptor is edge-triggered (any use of the
socket may consume the signal), so after each use the user checks
``ZMQ_EVENTS``: a thread that finds input waiting pokes the loop
(:meth:`EventLoop.poke`), and a handler keeps reading its socket until
``ZMQ_EVENTS`` shows none (or returns True to be called again).
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from rpccore.driverkit import Completion, Mailbox
from rpccore.errors import TransportError

LOG = logging.getLogger(__name__)
T = TypeVar("T")

#: Reads what a socket has; returns True when more input is still waiting.
SocketHandler = Callable[[], bool]
#: Periodic work of the loop's owner, given ``time.monotonic()``.
TimedWork = Callable[[float], None]

#: Commands run per round before the loop polls its sockets again.
_COMMANDS_PER_ROUND = 256


def _nothing() -> bool:
    """A handler that keeps the loop from sleeping for one round."""
    return False


def _ignore(now: float) -> None:
    """No periodic work."""


class LoopStopped(TransportError):
    """The loop has stopped; the command will never run."""


class EventLoop:
    """Polls descriptors, runs submitted commands and timed work.

    :param name: for thread names and log lines.
    :param on_tick: called about every :attr:`tick_interval` seconds.
    :param on_wake: called once :attr:`wake_at` (a ``time.monotonic()``
        value the owner sets) has passed.
    :param on_stop: called on the loop's thread when it stops: close the
        sockets there.
    """

    tick_interval = 0.05

    def __init__(self, name: str, *, on_tick: TimedWork = _ignore,
                 on_wake: TimedWork = _ignore,
                 on_stop: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self._on_tick = on_tick
        self._on_wake = on_wake
        self._on_stop = on_stop
        self._commands: Mailbox[Callable[[], None]] = Mailbox()
        self._commands_fd = self._commands.fileno()
        # Only plain descriptors are watched (a ZMQ socket's ZMQ_FD, the
        # mailbox's wake-up), so the C library's poll() does, without
        # zmq_poll's per-call set-up of every item.
        self._poller = select.poll()
        self._poller.register(self._commands_fd, select.POLLIN)
        self._handlers: dict[int, SocketHandler] = {}
        self._hot: list[SocketHandler] = []
        #: False once stop() was asked for: the owner leaves after its round
        self.running = True
        #: when to call on_wake (math.inf: not needed)
        self.wake_at = math.inf
        self._next_tick = 0.0
        #: the thread that runs the loop now
        self.owner: threading.Thread | None = None
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- any thread ---------------------------------------------------------

    @property
    def in_loop(self) -> bool:
        """Whether the calling thread runs the loop now (and may touch its
        sockets without a lock of the loop's)."""
        return threading.current_thread() is self.owner

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the loop soon. Never blocks."""
        self._commands.put(command)

    def poke(self, handler: SocketHandler) -> None:
        """Run ``handler`` on the loop soon: input is waiting."""
        if threading.current_thread() is self.owner:  # before it next sleeps
            self._hot.append(handler)
        else:
            self.submit(lambda: self.mark_hot(handler))

    def run_sync(self, command: Callable[[], T], timeout: float) -> T:
        """Run ``command`` on the loop and return its result.

        :raises TimeoutError: it did not complete in ``timeout`` seconds.
        :raises LoopStopped: the loop stopped before running it.
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
            if self.stopped.is_set() and done.set_error(LoopStopped(f"{self.name} has stopped")):
                break
            if time.monotonic() >= end:
                raise TimeoutError(f"{self.name} did not answer in {timeout:g} s")
        return done.result(0)

    def start_thread(self) -> None:
        """Run the loop on a thread of its own (once; later calls do
        nothing)."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.run, daemon=True, name=self.name)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop a loop run by :meth:`start_thread` (:meth:`finish` closes
        everything) and wait up to ``timeout`` seconds for it. Idempotent."""
        def halt() -> None:
            self.running = False
        self.submit(halt)
        if self._thread is None:
            self.finish()  # never ran
        elif threading.current_thread() is not self._thread and not self.stopped.wait(timeout):
            LOG.warning("%s: the I/O thread did not stop within %.1f s", self.name, timeout)

    # -- the owner ------------------------------------------------------------

    def watch(self, fd: int, handler: SocketHandler) -> None:
        """Call ``handler`` whenever ``fd`` (a ZMQ socket's ``ZMQ_FD``) is
        readable (edge-triggered: see the module docstring)."""
        self._poller.register(fd, select.POLLIN)
        self._handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            self._poller.unregister(fd)

    def mark_hot(self, handler: SocketHandler) -> None:
        """Run ``handler`` again before sleeping."""
        self._hot.append(handler)

    def run(self) -> None:
        """Run rounds on this thread until stopped, then :meth:`finish`."""
        self.owner = threading.current_thread()
        try:
            while self.running:
                self.run_round()
        except BaseException:
            LOG.exception("%s: the I/O loop failed", self.name)
        self.finish()

    def run_round(self) -> None:
        """Wait for input (or the next timer), then handle the sockets that
        have some, queued commands and timers."""
        ready = self._poll()
        for handler in dict.fromkeys(ready) if len(ready) > 1 else ready:
            try:
                if handler():
                    self._hot.append(handler)
            except Exception:
                LOG.exception("%s: handling a socket failed", self.name)
        # bounded, so that sockets are read between long bursts
        if not self._commands.empty() and self._run_commands(_COMMANDS_PER_ROUND):
            self._hot.append(_nothing)
        now = time.monotonic()
        if now >= self._next_tick or now >= self.wake_at:
            self._run_timers(now)

    def finish(self) -> None:
        """(The last owner) run what is left, :attr:`on_stop`, close the
        mailbox and set :attr:`stopped`. Idempotent."""
        if self.stopped.is_set():
            return
        try:
            self._run_commands(0)
            try:
                self._on_stop()
            except Exception:
                LOG.exception("%s: closing sockets failed", self.name)
        finally:
            self._commands.close()
            self.stopped.set()

    def _poll(self) -> list[SocketHandler]:
        """Sleep until input, a command or the next timer; the handlers of
        the descriptors that are readable, and those marked hot."""
        if not self._next_tick:
            self._next_tick = time.monotonic() + self.tick_interval
        commands = self._commands
        timeout = 0.0 if self._hot else max(
            0.0, min(self._next_tick, self.wake_at) - time.monotonic())
        if timeout and not commands.sleeping():
            timeout = 0.0  # commands came meanwhile
        ready, self._hot = self._hot, []
        woken = False
        handlers = self._handlers
        for fd, _ in self._poller.poll(math.ceil(timeout * 1000.0)):
            if fd == self._commands_fd:
                woken = True
                continue
            handler = handlers.get(fd)
            if handler is not None:
                ready.append(handler)
        commands.woken(woken)
        return ready

    def _run_commands(self, limit: int) -> bool:
        """Run queued commands, at most ``limit`` of them (0: all); True
        when some are left."""
        commands = self._commands.take(limit)
        for command in commands:
            try:
                command()
            except Exception:
                LOG.exception("%s: a command failed", self.name)
        return bool(limit) and len(commands) == limit and len(self._commands) > 0

    def _run_timers(self, now: float) -> None:
        if now >= self.wake_at:
            self.wake_at = math.inf
            try:
                self._on_wake(now)
            except Exception:
                LOG.exception("%s: delayed work failed", self.name)
        if now >= self._next_tick:
            self._next_tick = now + self.tick_interval
            try:
                self._on_tick(now)
            except Exception:
                LOG.exception("%s: periodic work failed", self.name)
