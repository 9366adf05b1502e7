"""An I/O thread that owns ZMQ sockets.

pyzmq sockets must not be used from two threads at once, so each side of the
driver (client connections, the server's bound socket) runs one
:class:`SocketLoop`: a thread polling its sockets plus a wake-up pipe. Other
threads never touch the sockets; they hand work over with :meth:`submit`,
which appends to a queue and writes one byte to the pipe if the loop may be
asleep.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import zmq

from rpccore.errors import TransportError

LOG = logging.getLogger(__name__)
T = TypeVar("T")

SocketHandler = Callable[[], None]


class LoopStopped(TransportError):
    """The I/O thread has stopped; the command will never run."""


class SocketLoop:
    """One I/O thread polling sockets, running submitted commands and a
    periodic :meth:`on_tick`.

    Subclasses register sockets with :meth:`watch` (from the loop thread) and
    implement :meth:`on_tick` and :meth:`on_stop`.
    """

    tick_interval = 0.05

    def __init__(self, name: str, context: zmq.Context[Any]) -> None:
        self.context = context
        self.name = name
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._signalled = False
        self._pipe_open = True
        self._poller = zmq.Poller()
        self._poller.register(self._read_fd, zmq.POLLIN)
        self._handlers: dict[Any, SocketHandler] = {}
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)
        self._started = False
        self._start_lock = threading.Lock()

    # -- any thread ---------------------------------------------------------

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()

    @property
    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the loop thread soon. Never blocks."""
        self._commands.append(command)
        if not self._signalled and self._pipe_open:
            self._signalled = True
            try:
                os.write(self._write_fd, b"!")
            except (BlockingIOError, OSError):
                pass  # pipe full (loop is awake anyway) or closed (stopped)

    def run_sync(self, command: Callable[[], T], timeout: float) -> T:
        """Run ``command`` on the loop thread and return its result.

        :raises TimeoutError: it did not complete in ``timeout`` seconds.
        :raises LoopStopped: the thread stopped before running it.
        :raises: whatever ``command`` raised.
        """
        if self.in_loop:
            return command()
        future: Future[T] = Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(command())
                except BaseException as exc:
                    future.set_exception(exc)

        self.submit(run)
        end = time.monotonic() + timeout
        while True:
            try:
                return future.result(min(0.1, max(0.0, end - time.monotonic())))
            except FutureTimeout:
                if not self._thread.is_alive() and future.cancel():
                    raise LoopStopped(f"{self.name} has stopped") from None
                if time.monotonic() >= end:
                    raise TimeoutError(f"{self.name} did not answer in {timeout:g} s") from None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; :meth:`on_stop` closes the sockets. Idempotent."""
        def halt() -> None:
            self._running = False
        self.submit(halt)
        if self._started and not self.in_loop:
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.warning("%s: I/O thread did not stop within %.1f s", self.name, timeout)
        if not self._started:
            self._close_pipe()

    # -- loop thread ----------------------------------------------------------

    def watch(self, sock: zmq.Socket[Any], handler: SocketHandler) -> None:
        """Call ``handler`` whenever ``sock`` is readable."""
        self._poller.register(sock, zmq.POLLIN)
        self._handlers[sock] = handler

    def unwatch(self, sock: zmq.Socket[Any]) -> None:
        if self._handlers.pop(sock, None) is not None:
            self._poller.unregister(sock)

    def on_tick(self, now: float) -> None:
        """Called about every :attr:`tick_interval` seconds."""

    def on_stop(self) -> None:
        """Called on the loop thread when it stops: close sockets here."""

    def _drain_commands(self) -> None:
        commands = self._commands
        while commands:
            command = commands.popleft()
            try:
                command()
            except Exception:
                LOG.exception("%s: a command failed", self.name)

    def _run(self) -> None:
        next_tick = time.monotonic() + self.tick_interval
        poll = self._poller.poll
        handlers = self._handlers
        read_fd = self._read_fd
        try:
            while self._running:
                timeout = max(0.0, next_tick - time.monotonic())
                for sock, _ in poll(timeout * 1000.0):
                    if sock == read_fd:
                        try:
                            os.read(read_fd, 4096)
                        except BlockingIOError:
                            pass
                        self._signalled = False
                        continue
                    handler = handlers.get(sock)
                    if handler is not None:
                        try:
                            handler()
                        except Exception:
                            LOG.exception("%s: handling a socket failed", self.name)
                self._drain_commands()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + self.tick_interval
                    try:
                        self.on_tick(now)
                    except Exception:
                        LOG.exception("%s: periodic work failed", self.name)
        finally:
            self._drain_commands()
            try:
                self.on_stop()
            except Exception:
                LOG.exception("%s: closing sockets failed", self.name)
            self._close_pipe()

    def _close_pipe(self) -> None:
        self._pipe_open = False
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
