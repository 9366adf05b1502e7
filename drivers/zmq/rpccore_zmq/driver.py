"""``ZmqDriver``: brokerless cells on ZeroMQ (``transport_url = zmq://``).

The driver turns destinations into requests (``Outgoing``, built by
:mod:`rpccore_zmq.addressing`) for the client side
(:mod:`rpccore_zmq.client`) and subscriptions for the process's
listener (:mod:`rpccore_zmq.listener`); notifications go through
:mod:`rpccore_zmq.notifications` to the pools of :mod:`rpccore_zmq.pools`.
The README of the distribution maps every module.
"""

from __future__ import annotations

import errno
import functools
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import zmq
from oslo_config import cfg

from rpccore.destination import Destination
from rpccore.driver import Driver, Incoming, ReplyHandler, Subscription, caller_elsewhere
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore_zmq import protocol
from rpccore_zmq.addressing import Addressing, wire_topic
from rpccore_zmq.client import Client
from rpccore_zmq.eventloop import LoopStopped
from rpccore_zmq.listener import BindError, Listener, listener_for
from rpccore_zmq.notifications import NotificationSender
from rpccore_zmq.options import OPTIONS
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.registry import Registry
from rpccore_zmq.subscription import ClosedOnce, ZmqSubscription

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)

#: Seconds a server start keeps retrying a bind refused with EADDRINUSE (a
#: socket on the same address is still closing).
BIND_PATIENCE = 5.0
_ANY_ADDRESS = ("*", "0.0.0.0", "::", "[::]", "")


class ZmqDriver(Driver):
    """Brokerless transport: servers bind, clients connect to them directly.

    Topic destinations are resolved with the cell's matchmaker (option
    ``matchmaker``); host destinations go straight to the host. See the
    distribution's README for the exact delivery guarantees.
    """

    counters = ("zmq_rerouted", "zmq_replies_dropped", "zmq_refused", "zmq_peer_failures",
                "zmq_lost_casts", "zmq_lost_notifications", "zmq_bad_handshakes")

    #: A call or confirmed cast raises Undeliverable when the matchmaker knows
    #: no host of the topic, or every host it names refuses the message.
    detects_undeliverable: ClassVar[bool] = True
    leader_follower: ClassVar[bool] = True
    #: Notifications reach the listeners running when they are sent; a pool
    #: with none running gets nothing (there is no broker to keep them).
    stores_notifications: ClassVar[bool] = False

    def __init__(self, cell: CellView) -> None:
        super().__init__(cell)
        self._lock = threading.Lock()
        self._context: zmq.Context[Any] | None = None
        self._client: Client | None = None
        self._subs: dict[ZmqSubscription, Listener] = {}
        self._registry = Registry(cell)
        self._addressing = Addressing(cell, self._registry)
        self._closed = False
        self._host_name: str | None = None
        self._notifications = NotificationSender(cell, self._registry, self._client_side)

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """``zmq_port``, ``zmq_bind_address``, ``zmq_host``, ``matchmaker``,
        heartbeat, receipt, look-up cache and connection limits."""
        return OPTIONS

    # -- lazily built parts -------------------------------------------------

    def _zmq_context(self) -> zmq.Context[Any]:
        if self._context is None:
            self._context = zmq.Context()
        return self._context

    def _client_side(self) -> Client:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            self._check_open()
            if self._client is None:
                self._client = Client(self.cell, self._zmq_context())
            return self._client

    def _check_open(self) -> None:
        if self._closed:
            raise TransportError(f"cell {self.cell.name}: the zmq driver is closed")

    def connect(self, timeout: float) -> None:
        """Build the matchmaker, so that a missing or misconfigured one shows.

        :raises ConfigError: the matchmaker is not installed or misconfigured.
        """
        self._registry.matchmaker()

    # -- sending --------------------------------------------------------------

    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        """Deliver ``body``; see the README for what happens when hosts fail.

        :raises InvalidDestination: ``dest.host`` is not a usable address.
        :raises Undeliverable: (calls, confirmed casts) no host of the topic is
            known, or every one refused the message.
        :raises TransportError: (calls, confirmed casts) no host acknowledged
            the message; (plain host-directed casts) the host is known dead, or
            earlier casts to it were lost; the driver is closed.
        """
        self._check_open()
        client = self._client_side()
        if deadline is None:
            deadline = time.monotonic() + self.cell.options.rpc_response_timeout
        topic = wire_topic(dest)
        if on_reply is not None:
            self._call(client, dest, topic, body, on_reply, deadline)
            return
        outs = self._addressing.casts(client, dest, topic, body, confirm, deadline)
        for out in outs:
            client.send(out)
        if not confirm:
            return
        for out in outs:
            assert out.done is not None
            if not out.done.wait_until(deadline):
                raise TransportError(f"no host acknowledged the cast to {dest} in time")
            if dest.host is None and isinstance(out.done.error, Undeliverable):
                self._registry.forget(dest.topic)
            out.done.result(0)

    def _call(self, client: Client, dest: Destination, topic: bytes, body: bytes,
              on_reply: ReplyHandler, deadline: float) -> None:
        """A call, sent and answered on the calling thread (see
        :mod:`rpccore_zmq.calls`), unless its caller waits elsewhere; a
        fanout call (a gather) goes to every host of the topic on the shared
        connections, whose loop hands each reply to the cell's handler."""
        if dest.fanout:
            hosts = self._registry.lookup(dest.topic)
            if not hosts:
                return self._addressing.nobody(dest, True)
            for host in hosts:
                client.send(Outgoing(protocol.CALL, topic, host.encode("utf-8"), body, [host],
                                     True, False, deadline))
            return
        out = self._addressing.call(client, dest, topic, body, deadline, self._registry.lookup)
        assert out is not None  # a look-up always answers
        late = caller_elsewhere.get()
        if late is not None:
            # sent on the shared connections, so that this thread is free at
            # once: the client's loop hands the replies to the cell's handler
            self._waited_elsewhere(dest, out, late)
            client.send(out)
            return
        try:
            client.call(out, on_reply)
        except Undeliverable:
            if dest.host is None:
                self._registry.forget(dest.topic)
            raise

    def send_nowait(self, dest: Destination, body: bytes, *, on_reply: ReplyHandler,
                    deadline: float, on_failure: Callable[[RPCError], None]) -> bool:
        """A call of an asyncio caller taken on the calling thread (the
        event loop's) if the topic's hosts are known without a look-up: handed
        to the client's loop, which sends it on the host's shared connection
        as :meth:`send` does with ``caller_elsewhere`` set. The calling thread
        touches no socket and takes no lock another thread holds for long
        (the connection's lock, held while the loop reads a batch, would).
        A fanout, the driver's first request, or a look-up due, is declined
        (False): :meth:`send` sends it on a thread.

        :raises InvalidDestination: ``dest.host`` is not a usable address,
            or the topic reads as a notification key.
        """
        client = self._client
        if client is None or self._closed or dest.fanout:
            return False
        out = self._addressing.call(client, dest, wire_topic(dest), body, deadline,
                                    self._registry.cached)
        if out is None:
            return False
        self._waited_elsewhere(dest, out, on_failure)
        client.casts.hand_to_loop(out)
        return True

    def _waited_elsewhere(self, dest: Destination, out: Outgoing,
                          late: Callable[[RPCError], None]) -> None:
        """Make ``out`` a call whose caller waits elsewhere (asyncio: see
        :data:`rpccore.driver.caller_elsewhere`) and whose failure goes to
        ``late`` (a topic's cached hosts are forgotten when all refused)."""
        topic = dest.topic if dest.host is None else None

        def failed(error: RPCError) -> None:
            if topic is not None and isinstance(error, Undeliverable):
                self._registry.forget(topic)
            late(error)

        out.wait_for_it()
        out.on_failure = failed

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        """One copy to every pool listening on ``topic`` now (see
        :mod:`rpccore_zmq.notifications`); nothing is kept for pools with no
        running listener.

        :raises TransportError: (``confirm``) no host of a pool acknowledged
            its copy before ``deadline``; the driver is closed.
        """
        self._check_open()
        if deadline is None:
            deadline = time.monotonic() + self.cell.options.rpc_response_timeout
        self._registry.matchmaker()
        self._notifications.notify(topic, body, confirm, deadline)

    # -- serving --------------------------------------------------------------

    def local_host(self) -> str:
        """The host string this process's servers are reached under: option
        ``zmq_host``, else ``zmq_bind_address`` when it is one address, else
        this machine's host name (``127.0.0.1`` if that does not resolve).
        Servers that name no host register it with the matchmaker."""
        options = self.cell.options
        if options.zmq_host:
            return str(options.zmq_host)
        if options.zmq_bind_address not in _ANY_ADDRESS:
            return str(options.zmq_bind_address)
        if self._host_name is None:
            name = socket.gethostname()
            try:
                socket.getaddrinfo(name, None)
            except OSError:
                name = "127.0.0.1"
            self._host_name = name
        return self._host_name

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        """Bind (first server only), start delivering, register with the
        matchmaker.

        :raises TransportError: the address cannot be bound (in use by another
            process for longer than a few seconds, or not an address of this
            machine).
        :raises ConfigError: the matchmaker is not installed; or servers of
            another cell of this process listen on the same address and port
            with other CURVE keys or another ``max_message_size``.
        """
        self._check_open()
        protocol.check_topic(dest.topic)
        host = dest.host if dest.host is not None else self.local_host()
        return self._start(ZmqSubscription(self.cell, dest, host, on_message))

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        """Listen as pool ``pool`` on this process's listener (binding it
        first if no server or listener of the process has), and register
        this host under the topic's notification key with the matchmaker.

        :raises TransportError: as :meth:`subscribe`.
        :raises InvalidDestination: a pool name that is not UTF-8.
        """
        self._check_open()
        code = protocol.pool_code(pool)
        return self._start(ZmqSubscription(self.cell, Destination(topic), self.local_host(),
                                           on_message, pool=code))

    def _start(self, sub: ZmqSubscription) -> Subscription:
        self._registry.matchmaker()
        listener = self._listen(sub)
        with self._lock:
            self._subs[sub] = listener
        self._warn_if_unreachable(sub.host)
        self._registry.register(sub.key, sub.host)
        return ClosedOnce(functools.partial(self._unsubscribe, sub))

    def _listen(self, sub: ZmqSubscription) -> Listener:
        """Add ``sub`` to the process's listener on the cell's address,
        retrying for a while when the address is still in use (a socket on
        it is closing)."""
        give_up = time.monotonic() + BIND_PATIENCE
        while True:
            try:
                listener = listener_for(self.cell)
                listener.loop.run_sync(functools.partial(listener.add, sub),
                                       timeout=BIND_PATIENCE)
                return listener
            except LoopStopped:
                continue  # it closed just now: the next one binds afresh
            except BindError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > give_up:
                    raise
                time.sleep(0.05)
            except TimeoutError:
                raise TransportError(f"cell {self.cell.name}: the server I/O thread did not "
                                     f"answer in {BIND_PATIENCE:g} s") from None

    def _warn_if_unreachable(self, host: str) -> None:
        try:
            wanted = protocol.endpoint(host, self.cell.options.zmq_port)
        except ValueError:
            LOG.warning("cell %s: server host %r is not an address clients can connect to",
                        self.cell.name, host)
            return
        if not wanted.endswith(f":{self.cell.options.zmq_port}"):
            LOG.warning("cell %s: server host %r names a port other than zmq_port %s, "
                        "which this process listens on", self.cell.name, host,
                        self.cell.options.zmq_port)

    def _unsubscribe(self, sub: ZmqSubscription) -> None:
        with self._lock:
            listener = self._subs.pop(sub, None)
        if listener is None:
            return
        try:
            listener.loop.run_sync(lambda: listener.remove(sub), timeout=BIND_PATIENCE)
        except LoopStopped:
            pass
        except TimeoutError:
            sub.closed = True
            LOG.warning("cell %s: the server I/O thread is busy; %s closes late",
                        self.cell.name, sub.dest)
        self._registry.unregister(sub.key, sub.host)

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        """Unregister, stop both I/O threads, close every socket. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subs = list(self._subs)
            client, context = self._client, self._context
        for sub in subs:
            self._unsubscribe(sub)
        self._notifications.close()
        self._registry.close()
        if client is not None:
            client.stop()
            if context is not None and not client.alive:
                context.term()
