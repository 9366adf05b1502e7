"""One AMQP 1.0 connection driven by a proton Container on its own thread.

Every proton object is touched only on that I/O thread. Other threads hand
it work with :meth:`IoLoop.submit`: closures queue up in a driverkit
:class:`~rpccore.driverkit.Mailbox` whose wake-up is one
:class:`~proton.reactor.EventInjector` event, which drains however many have
accumulated, so a burst of casts costs one pipe write, not one per message.

The loop owns connecting, failover across the URL's hosts (tried in turn)
and reconnecting with exponential backoff, jittered (half of each wait at
random, and 0 to ``reconnect_interval`` before the first attempt after a
lost connection) so that many processes losing one broker do not come back
in the same millisecond. It learns from the broker's open frame which
address format to use (:mod:`rpccore_qpid.layout`). Links are owned by the objects of
:mod:`rpccore_qpid.sender` and :mod:`rpccore_qpid.receiver`; after a
reconnect the loop re-attaches every receiver and every sender that has
messages waiting. A failing link object is logged and never ends the loop.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from proton import Connection, Delivery, Handler, Message
from proton.handlers import IncomingMessageHandler, MessagingHandler, OutgoingMessageHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from rpccore.driverkit import Mailbox
from rpccore.errors import TransportError
from rpccore_qpid.brokers import broker_addresses, connect_options, ssl_domain
from rpccore_qpid.layout import Layout, choose
from rpccore_qpid.links import describe
from rpccore_qpid.management import Management

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore_qpid.links import LinkOwner

LOG = logging.getLogger(__name__)
#: proton's Event types its connection, link, delivery... as Optional; in the
#: handlers below the one each event is about is always set.
ProtonEvent: TypeAlias = Any

_WORK = "rpccore_work"
#: Conditions that another attempt will not cure: fail callers at once.
_FATAL = ("amqp:unauthorized-access", "amqp:sasl-auth-failed", "amqp:security-failed")


class Timer(Handler):  # type: ignore[misc]
    """A container timer calling ``fn`` on the I/O thread."""

    def __init__(self, fn: Callable[[], None]) -> None:
        super().__init__()
        self.fn = fn

    def on_timer_task(self, event: ProtonEvent) -> None:
        self.fn()


class IoLoop(MessagingHandler):  # type: ignore[misc]
    """The connection of one driver and the thread that runs it.

    Thread-safe: :meth:`start`, :meth:`submit`, :meth:`wait_connected`,
    :meth:`close`. Everything named ``io_*`` or ``on_*`` runs on the I/O thread.
    """

    def __init__(self, cell: CellView) -> None:
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True,
                         peer_close_is_error=True)
        # Deliveries and link credit are handled by on_delivery / on_link_flow
        # below, which look each delivery's link up once; proton's message
        # handlers look it up several times and allocate a Message per delivery.
        own: list[Any] = self.handlers  # type: ignore[assignment]
        self.handlers = [h for h in own
                         if not isinstance(h, IncomingMessageHandler | OutgoingMessageHandler)]
        self._received = Message()
        self.cell = cell
        self._opts = cell.options
        self._targets = broker_addresses(cell)
        self._ssl = ssl_domain(cell)
        self._container = Container(self)
        self._container.container_id = f"rpccore-{cell.name}"
        self._injector = EventInjector()
        self._container.selectable(self._injector)
        #: work from other threads; the first put after the I/O thread took
        #: its items injects one event, whatever the burst
        self._work: Mailbox[Callable[[], None]] = Mailbox(wake=self._wake)
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        # state, guarded by _cond for readers on other threads
        self.state = "new"           # new, connecting, connected, closed
        self._ever_connected = False
        self._failed_round = False   # every host failed since the last success
        self._fatal = False
        self._last_error = ""
        # I/O-thread-only state
        self.conn: Connection | None = None
        self._attempt = 0
        self._failures = 0
        self._generation = 0
        self.owners: set[LinkOwner] = set()
        #: scratch message the senders fill and encode, one at a time
        self.message = Message()
        #: the address format, chosen at the first connection
        self.layout: Layout | None = None
        #: RabbitMQ 4's management node (used with v2 addresses only)
        self.management = Management(self)
        self.owners.add(self.management)

    # -- thread-safe API ------------------------------------------------------

    def start(self) -> None:
        """Start the I/O thread (connecting begins at once). Idempotent."""
        with self._cond:
            if self._thread is not None or self.state == "closed":
                return
            self.state = "connecting"
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"rpccore-qpid-{self.cell.name}")
            self._thread.start()

    def _run(self) -> None:
        try:
            self._container.run()
        except Exception:
            LOG.exception("cell %s: the AMQP I/O thread failed", self.cell.name)
        finally:
            with self._cond:
                self.state = "closed"
                self._last_error = self._last_error or "the I/O thread ended"
                self._cond.notify_all()

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the I/O thread soon, in submission order."""
        self._work.put(fn)

    def _wake(self) -> None:
        self._injector.trigger(ApplicationEvent(_WORK))

    def wait_connected(self, deadline: float | None) -> None:
        """Block until connected.

        :raises TransportError: closed; credentials refused; every host failed
            before this loop ever connected; or ``deadline`` (monotonic) passed.
        """
        if self.state == "connected":
            return  # the common case, without the lock
        self.start()
        with self._cond:
            while self.state != "connected":
                if self.state == "closed":
                    raise TransportError(f"cell {self.cell.name}: the qpid driver is closed")
                if self._fatal or (self._failed_round and not self._ever_connected):
                    raise TransportError(f"cell {self.cell.name}: cannot connect to "
                                         f"{self.cell.url}: {self._last_error}")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TransportError(f"cell {self.cell.name}: not connected to "
                                         f"{self.cell.url} in time: {self._last_error}")
                self._cond.wait(left)

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection and end the I/O thread. Idempotent."""
        with self._cond:
            thread = self._thread
            if self.state == "closed":
                return
            self.state = "closed"
            self._cond.notify_all()
        if thread is None:
            return
        self.submit(self._io_shutdown)
        thread.join(timeout)
        if thread.is_alive():
            LOG.warning("cell %s: the AMQP I/O thread did not stop in %s s",
                        self.cell.name, timeout)

    # -- I/O thread: work and lifecycle ------------------------------------

    def on_rpccore_work(self, event: ProtonEvent) -> None:
        for fn in self._work.take():
            try:
                fn()
            except Exception:
                LOG.exception("cell %s: error in AMQP I/O work", self.cell.name)

    def on_start(self, event: ProtonEvent) -> None:
        self._connect()

    def _io_shutdown(self) -> None:
        self._tell_owners("io_closed")
        self._injector.close()
        if self.conn is None:
            self._container.stop()
            return
        # stop once the broker saw the close (on_disconnected), so that its
        # consumers go away now, not when this process exits; 2 s at most
        self.conn.close()
        self.schedule(2.0, self._container.stop)

    @property
    def generation(self) -> int:
        """Bumped on every new connection: deliveries of an older one are stale."""
        return self._generation

    def _connect(self) -> None:
        if self.state == "closed":
            return
        target = self._targets[self._attempt % len(self._targets)]
        kwargs = connect_options(self.cell, target, self._ssl)
        LOG.info("cell %s: connecting to %s", self.cell.name, target.shown)
        try:
            conn = self._container.connect(url=target.url, **kwargs)
        except Exception as exc:  # bad TLS files, no TLS support...
            self._fatal = True
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        conn.rpccore_target = target.shown
        self.conn = conn
        self._container.schedule(self._opts.connect_timeout,
                                 Timer(lambda: self._connect_timed_out(conn)))

    def _connect_timed_out(self, conn: Connection) -> None:
        if conn == self.conn and self.state == "connecting":
            LOG.warning("cell %s: connecting to %s timed out", self.cell.name,
                        conn.rpccore_target)
            self._last_error = "connection attempt timed out"
            transport = conn.transport
            if transport is not None:
                transport.close_tail()
                transport.close_head()

    def on_connection_opened(self, event: ProtonEvent) -> None:
        if event.connection != self.conn or self.state == "closed":
            return
        if self.layout is None:
            self.layout = choose(self._opts.amqp_addresses, event.connection.remote_properties,
                                 self._opts.queue_expiry)
            LOG.info("cell %s: using %s addresses", self.cell.name, self.layout.name)
        self._generation += 1
        again = self._ever_connected
        self._failures = 0
        with self._cond:
            self.state = "connected"
            self._ever_connected = True
            self._failed_round = False
            self._last_error = ""
            self._cond.notify_all()
        LOG.info("cell %s: connected to %s%s", self.cell.name,
                 event.connection.rpccore_target, " (reconnected)" if again else "")
        if again:
            self.cell.stats.incr("reconnects")
        self._tell_owners("io_connected", self.conn)

    def _tell_owners(self, method: str, *args: Any) -> None:
        for owner in list(self.owners):
            try:
                getattr(owner, method)(*args)
            except Exception:
                LOG.exception("cell %s: error in %s of %s", self.cell.name, method,
                              getattr(owner, "address", owner))

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on the I/O thread after ``delay`` seconds (I/O thread only)."""
        self._container.schedule(delay, Timer(fn))

    # -- I/O thread: events routed to the link objects ---------------------

    def _route(self, endpoint: Any, method: str, *args: Any) -> bool:
        """Call ``method`` of the link object owning ``endpoint``; False if
        none does. A failing link object is logged, never kills the loop."""
        owner = getattr(endpoint, "rpccore_link", None)
        if owner is None:
            return False
        try:
            getattr(owner, method)(*args)
        except Exception:
            LOG.exception("cell %s: error handling %s of %s", self.cell.name, method,
                          getattr(owner, "address", owner))
        return True

    def on_link_opened(self, event: ProtonEvent) -> None:
        self._route(event.link, "io_opened", event.link)

    def on_link_flow(self, event: ProtonEvent) -> None:
        link = event.link
        if link.is_sender and link.credit:
            self._route(link, "io_sendable", link)

    def on_delivery(self, event: ProtonEvent) -> None:
        dlv = event.delivery
        link = dlv.link
        if link.is_sender:
            if dlv.updated:
                state = dlv.remote_state
                why = "" if state == Delivery.ACCEPTED else (
                    "rejected" if state == Delivery.REJECTED else "released")
                self._route(link, "io_outcome", dlv, not why, why)
                if dlv.settled:
                    dlv.settle()
            return
        if dlv.aborted:
            dlv.settle()
            return
        if not dlv.readable or dlv.partial:
            return
        # one Message, reused: the link objects copy what they keep at once
        message = self._received
        message.decode(link.recv(dlv.pending))
        link.advance()
        if not self._route(link, "io_message", link, dlv, message):
            dlv.update(Delivery.RELEASED)
            dlv.settle()

    # -- I/O thread: connection events -------------------------------------

    def on_transport_error(self, event: ProtonEvent) -> None:
        cond = event.transport.condition
        self._last_error = describe(cond)
        if cond is not None and cond.name in _FATAL:
            self._fatal = not self._ever_connected
            LOG.error("cell %s: %s refused the credentials: %s", self.cell.name,
                      getattr(event.connection, "rpccore_target", "broker"), self._last_error)

    def on_connection_error(self, event: ProtonEvent) -> None:
        self._last_error = describe(event.connection.remote_condition)
        LOG.warning("cell %s: the broker closed the connection: %s", self.cell.name,
                    self._last_error)
        event.connection.close()

    def on_connection_closing(self, event: ProtonEvent) -> None:
        event.connection.close()

    def on_session_error(self, event: ProtonEvent) -> None:
        self._route(event.session, "io_failed", event.session.remote_condition, event.session)
        event.session.close()

    def on_session_closing(self, event: ProtonEvent) -> None:
        self.on_session_error(event)

    def on_link_error(self, event: ProtonEvent) -> None:
        self._route(event.link, "io_failed", event.link.remote_condition, event.link)
        event.link.close()

    def on_link_closing(self, event: ProtonEvent) -> None:
        self.on_link_error(event)

    def on_transport_closed(self, event: ProtonEvent) -> None:
        if self.state == "closed":
            self._container.stop()

    def on_disconnected(self, event: ProtonEvent) -> None:
        if self.state == "closed":
            return
        if event.connection != self.conn:
            return
        self.conn = None
        was = self.state
        with self._cond:
            self.state = "connecting"
            self._cond.notify_all()
        if was == "connected":
            LOG.warning("cell %s: lost the connection to %s: %s", self.cell.name,
                        event.connection.rpccore_target, self._last_error or "disconnected")
            self._tell_owners("io_lost")
            self._attempt += 1
            # a splay: not every process that lost this broker at once
            # comes back in the same millisecond
            splay = random.random() * min(self._opts.reconnect_interval,
                                          self._opts.reconnect_interval_max)
            self._container.schedule(splay, Timer(self._connect))
            return
        self._failed(self._last_error or "connection refused or closed")

    def _failed(self, why: str) -> None:
        self._failures += 1
        self._attempt += 1
        with self._cond:
            self._last_error = why
            if self._failures >= len(self._targets):
                self._failed_round = True
            self._cond.notify_all()
        backoff = min(self._opts.reconnect_interval_max,
                      self._opts.reconnect_interval
                      * self._opts.reconnect_backoff ** max(0, self._failures - 1))
        delay = backoff * (0.5 + 0.5 * random.random())  # jitter
        LOG.warning("cell %s: connection attempt failed (%s); next try in %.2f s",
                    self.cell.name, why, delay)
        self._container.schedule(delay, Timer(self._connect))
