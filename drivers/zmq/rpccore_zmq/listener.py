"""The serving side: one bound ROUTER socket per address and port in a
process, shared by the servers of every ``RPC`` object and cell there.

A :class:`Listener` is a composition: an :class:`~rpccore_zmq.eventloop.EventLoop`
that its threads take turns at (:class:`~rpccore_zmq.leadership.LeaderFollower`),
a :class:`~rpccore_zmq.router.Router` that reads the socket and routes
requests to subscriptions, and a :class:`~rpccore_zmq.delivery.Delivery`
that runs them on the thread that read them. The listener itself owns the
socket's life: bound when the first subscription starts, closed when the
last one has stopped and every request it delivered has been acknowledged
(so replies of requests in flight still go out over it).

Get one with :func:`listener_for`. Cells that share an address and port
share one socket, so they must agree on what it is set up with: a cell whose
CURVE keys or ``max_message_size`` differ from those of the cells already
listening there gets a :class:`~rpccore.ConfigError` rather than silently
the first cell's settings.

libzmq drops connections that fail the ZMTP handshake (raw TCP noise, or a
client CURVE refuses); the listener counts them as ``zmq_bad_handshakes``.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq
from zmq.utils.monitor import parse_monitor_message

from rpccore.errors import ConfigError, TransportError
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.curve import secure_server
from rpccore_zmq.delivery import Delivery
from rpccore_zmq.eventloop import EventLoop, LoopStopped
from rpccore_zmq.frames import LockedSocket
from rpccore_zmq.leadership import LeaderFollower
from rpccore_zmq.router import Router
from rpccore_zmq.settings import ListenerSettings
from rpccore_zmq.sockopts import set_common_options
from rpccore_zmq.subscription import ZmqSubscription

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

_HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                       | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class BindError(TransportError):
    """The server socket could not be bound (``errno`` says why)."""

    def __init__(self, message: str, errno_value: int) -> None:
        super().__init__(message)
        self.errno = errno_value


class Listener:
    """The bound socket of one address and port, and the threads serving it."""

    def __init__(self, cell: CellView, endpoint: str, settings: ListenerSettings) -> None:
        self.cell = cell
        self.endpoint = endpoint
        self.settings = settings
        self.finished = False
        self.context: zmq.Context[Any] = zmq.Context()
        self.loop = EventLoop(f"rpccore-zmq-server-{endpoint}", on_tick=self._on_tick,
                              on_wake=self._on_wake, on_stop=self._on_stop)
        self.policy = LeaderFollower(self.loop)
        self.router = Router(cell, endpoint, self.loop, Delivery(self.policy),
                             settings.max_size, self._on_idle)
        self._drain_limit: float = cell.options.rpc_response_timeout
        self._idle_since: float | None = None
        self._authenticator: Any = None
        self._monitor: zmq.Socket[Any] | None = None
        self._monitor_fd = -1

    def start(self) -> None:
        self.policy.start()

    # -- subscriptions (on the loop: run_sync) ---------------------------------

    def add(self, sub: ZmqSubscription) -> None:
        """Start delivering to ``sub``, binding the socket first if needed.

        :raises BindError: the address is in use or cannot be bound.
        :raises ConfigError: CURVE is on and this process has no server key.
        :raises LoopStopped: this listener has closed for good.
        """
        if self.finished:
            raise LoopStopped(f"the listener on {self.endpoint} has closed")
        if self.router.conn is None:
            try:
                self._bind()
            except (BindError, ConfigError):
                if not self.router.serving:
                    self._finish()
                raise
        self.router.add(sub)
        self._idle_since = None

    def remove(self, sub: ZmqSubscription) -> None:
        """Stop delivering to ``sub``; after this it gets nothing more."""
        self.router.remove(sub)
        if not self.router.serving:
            self._idle_since = time.monotonic()
            self._close_if_idle()

    # -- the socket -------------------------------------------------------------

    def _bind(self) -> None:
        settings = self.settings
        sock = self.context.socket(zmq.ROUTER)
        set_common_options(sock, settings.queue_size, settings.max_size, settings.keepalive)
        sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        if "[" in self.endpoint or "*" in self.endpoint:
            sock.setsockopt(zmq.IPV6, 1 if "[" in self.endpoint else 0)
        try:
            if settings.curve is not None:
                self._authenticator = secure_server(sock, settings.curve, self.cell)
            sock.bind(self.endpoint)
        except BaseException as exc:
            self._stop_authenticator()
            sock.close(linger=0)
            if isinstance(exc, zmq.ZMQError):
                raise BindError(f"cell {self.cell.name}: cannot bind {self.endpoint}: {exc}",
                                exc.errno or 0) from None
            raise
        conn = self.router.conn = LockedSocket(sock, routed=True)
        self.loop.watch(conn.fd, self.router.on_readable)
        self.loop.mark_hot(self.router.on_readable)
        self._monitor = sock.get_monitor_socket(_HANDSHAKE_FAILURES)
        # by its descriptor, like the bound socket: a ZMQ socket in the poll
        # set costs zmq_poll an event check per round, on every message
        self._monitor_fd = int(self._monitor.getsockopt(zmq.FD))
        self.loop.watch(self._monitor_fd, self._on_monitor)
        self.loop.mark_hot(self._on_monitor)
        LOG.info("cell %s: listening on %s", self.cell.name, self.endpoint)

    def _on_idle(self) -> None:
        """(Any thread) the last request delivered was acknowledged."""
        self.loop.submit(self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.router.conn is None or self.router.serving:
            return
        busy = self.router.outstanding
        waited = time.monotonic() - (self._idle_since or time.monotonic())
        if busy and waited < self._drain_limit:
            return
        self._close_socket()
        LOG.info("cell %s: stopped listening on %s%s", self.cell.name, self.endpoint,
                 f" ({busy} requests never acknowledged)" if busy else "")
        self._finish()

    def _finish(self) -> None:
        """Leave the process's listeners and stop the threads."""
        _forget(self)
        self.loop.running = False

    def _close_socket(self) -> None:
        if self._monitor is not None:
            self.loop.unwatch(self._monitor_fd)
        conn = self.router.conn
        if conn is not None:
            with conn.lock:
                self.loop.unwatch(conn.fd)
                try:
                    conn.socket.disable_monitor()
                except zmq.ZMQError:
                    pass
                conn.socket.close(linger=0)
                self.router.conn = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None
        self._stop_authenticator()

    def _stop_authenticator(self) -> None:
        if self._authenticator is not None:
            try:
                self._authenticator.stop()
            except Exception:
                LOG.exception("cell %s: stopping the CURVE authenticator failed", self.cell.name)
            self._authenticator = None

    def _on_monitor(self) -> bool:
        monitor = self._monitor
        for _ in range(100):
            # edge-triggered descriptor: read until ZMQ_EVENTS shows none
            if monitor is None or not int(monitor.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                return False
            try:
                event = parse_monitor_message(monitor.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                return False
            except Exception:
                continue
            if event["event"] & _HANDSHAKE_FAILURES:
                for cell in self.router.cells():
                    cell.stats.incr("zmq_bad_handshakes")
                _RATELOG.warning("handshake", "cell %s: a connection to %s failed the ZMTP "
                                 "handshake (not an rpccore client?)", self.cell.name,
                                 self.endpoint)
        return True

    # -- the loop's timed work ------------------------------------------------

    def _on_tick(self, now: float) -> None:
        self.router.on_tick(now)
        if self.router.conn is not None and not self.router.serving:
            self._close_if_idle()

    def _on_wake(self, now: float) -> None:
        self.router.on_wake(now)

    def _on_stop(self) -> None:
        self.router.close_all()
        self._close_socket()
        _forget(self)
        self.context.term()


_listeners: dict[str, Listener] = {}
_listeners_lock = threading.Lock()


def listener_for(cell: CellView) -> Listener:
    """The running listener of this process on the cell's
    ``zmq_bind_address:zmq_port`` (started, not necessarily bound yet).

    :raises ConfigError: the cell's CURVE keys are malformed, or differ (or
        its ``max_message_size`` does) from those of the cells already
        listening on that address and port.
    :raises BindError: (``EADDRINUSE``) a listener there with other settings
        is still closing; try again shortly.
    """
    options = cell.options
    endpoint = protocol.bind_endpoint(options.zmq_bind_address, options.zmq_port)
    settings = ListenerSettings.of(cell)
    with _listeners_lock:
        listener = _listeners.get(endpoint)
        if listener is not None and not listener.finished:
            _check_shares(listener, cell, settings)
            return listener
        listener = _listeners[endpoint] = Listener(cell, endpoint, settings)
    listener.start()
    return listener


def _check_shares(listener: Listener, cell: CellView, settings: ListenerSettings) -> None:
    """Check that ``cell`` may share ``listener``'s socket (see the module
    docstring)."""
    differ = settings.conflicts(listener.settings)
    if differ and not listener.router.serving:
        # closing: the cell gets a socket of its own once it has closed
        raise BindError(f"the listener on {listener.endpoint} is closing", errno.EADDRINUSE)
    if differ:
        raise ConfigError(
            f"cell {cell.name}: servers of cell {listener.cell.name} in this process already "
            f"listen on {listener.endpoint} with different {' and '.join(differ)}; one "
            f"address and port is one socket: give cell {cell.name} the same settings, or a "
            f"zmq_port or zmq_bind_address of its own")
    if settings.tuned_otherwise(listener.settings):
        _RATELOG.warning(f"tuning:{cell.name}", "cell %s: the listener on %s keeps the "
                         "zmq_send_queue (%s) and zmq_heartbeat_interval (%g) of cell %s, "
                         "which opened it", cell.name, listener.endpoint,
                         listener.settings.queue_size, listener.settings.keepalive,
                         listener.cell.name)


def active_listeners() -> dict[str, Listener]:
    """This process's listeners by endpoint (a copy: for tests and tools)."""
    with _listeners_lock:
        return dict(_listeners)


def _forget(listener: Listener) -> None:
    with _listeners_lock:
        listener.finished = True
        if _listeners.get(listener.endpoint) is listener:
            del _listeners[listener.endpoint]


def _forget_listeners_after_fork() -> None:
    # a forked child has none of the parent's threads: its listeners are gone
    _listeners.clear()


os.register_at_fork(after_in_child=_forget_listeners_after_fork)
