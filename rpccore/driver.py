"""The transport plugin interface.

A driver moves opaque envelope bytes between processes. The core owns
everything else: correlation ids, timeouts, encoding, signing and dispatch.
Drivers are registered in the ``rpccore.drivers`` entry-point namespace under
the scheme of the ``transport_url`` they serve (``rabbit://`` -> ``rabbit``).

One driver instance serves one cell of one :class:`rpccore.RPC` object and is
shared by every client call and server of that cell. Every method may be
called from any thread at the same time.

Replies: one mechanism for everything that comes back
------------------------------------------------------

A request may be answered by **many** reply envelopes: keepalives while a
long method runs (``heartbeat=``), the items of a streamed reply, and the
final reply. The core owns what they mean; a driver only carries bytes:

- a server calls :meth:`Incoming.reply` once per reply envelope, any number
  of times for one request, never for one request from two threads at once;
- the driver delivers each of them to the ``on_reply`` handler given to
  :meth:`Driver.send`, **in the order they were sent** for one request, from
  any of its threads. That handler is the cell's one reply handler (the same
  callable for every call of the cell), so a driver keeps one reply channel
  (a queue, an inbox, a socket) per cell or per connection, and never needs
  to look inside an envelope: the core correlates by the request id inside.
  The handler's result says whether the request still waits for more
  (:data:`ReplyHandler`), for drivers that read each call's replies on a
  connection of its own.

A caller that waits elsewhere (asyncio): the core sends the requests of
asyncio code from threads that must not wait for their replies (the task
awaits them on its event loop). While such a ``send`` runs,
:data:`caller_elsewhere` holds where its failures go. A driver that reads a
call's replies in ``send`` (zmq) then returns as soon as the request is on
its way, hands the replies to ``on_reply`` from its own threads like any
other, and reports a failure it finds after returning (no host took the
request, the host died before answering) by calling that handler once,
instead of raising. Drivers whose ``send`` returns once the request is on
its way anyway have nothing to do.

A driver that can take a call without blocking (queue it for an I/O
thread of its own; no lock that another thread holds, no look-up, no
connection to wait for) may also implement :meth:`Driver.send_nowait`: the
core then hands an asyncio call to the driver on the event loop's own
thread, skipping the hop to a send thread, and falls back to ``send`` on a
thread whenever ``send_nowait`` declines. The default declines every time.

What goes back from the caller to the server (stream credit, cancelling a
stream) travels as ordinary casts to the server's own destination, which the
server names in its replies, so a driver needs nothing more than
:meth:`Driver.send` and :meth:`Driver.subscribe` for it.

Notifications: published once, one copy per pool
-------------------------------------------------

A notification is published on a **notification topic** with
:meth:`Driver.notify` and consumed by **pools** with :meth:`Driver.listen`:
every pool listening on a topic receives one copy of every notification,
shared among that pool's listeners (like a topic's work among servers).
Notification topics are a namespace of their own: an RPC topic of the same
name never receives them, and the reverse. Pool names are opaque strings
(any character); ``pool=None`` is a pool of its own, distinct from every
named pool. The priority and everything else is inside the envelope: a
driver routes by topic and pool only.

Drivers that keep messages (brokers, :attr:`Driver.stores_notifications`)
keep a pool's notifications while none of its listeners runs, from the
first time the pool listened, and give them to it when it comes back; they
bound what they keep by the cell's ``notification_max_queue_length``
(messages per pool) and ``notification_ttl`` (seconds), and count what they
drop (``cell.stats.incr("notifications_dropped")``) and log it, never
silently. Drivers without storage (zmq) deliver to the listeners running
now.

What the conformance kit (:mod:`rpccore.testing.notification_conformance`)
checks of the retention cap: once a stopped pool's listener comes back,
``notification_max_queue_length`` of the notifications sent meanwhile
arrive (which ones, oldest or newest, is the driver's choice), the excess
is counted as ``notifications_dropped`` in the cell of whichever side
learns of it (the notifier's or a listener's: the kit adds them up), at the
latest once the listener is back, and a WARNING log line that says
``dropped`` tells the operator. Expiry after ``notification_ttl`` is
checked by not delivering what expired; counting it is encouraged, not
checked. Where :meth:`Incoming.requeue` cannot redeliver, a driver's suite
sets ``requeues_notifications = False`` and the kit checks that the core
counts and logs the lost requeues instead.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, ClassVar

from oslo_config import cfg

from rpccore.destination import Destination
from rpccore.errors import ConfigError, RPCError

if TYPE_CHECKING:
    from rpccore.cellview import CellView

#: ``on_reply(reply_body) -> more``: takes one reply envelope's bytes and
#: returns True while the request still waits for more replies (a keepalive
#: or a stream item came, the final reply has not), False once nothing more
#: is wanted (the final reply, or nobody waits any more). A driver with one
#: reply channel per cell may ignore the result; a driver that reads a call's
#: replies on a connection of its own (zmq) reads it while this says True.
ReplyHandler = Callable[[bytes], bool]

#: Set by the core while :meth:`Driver.send` runs for a caller that waits
#: for the replies elsewhere (an asyncio task), ``None`` otherwise: the
#: handler of a failure the driver finds after ``send`` returned (an
#: :class:`~rpccore.RPCError`, at most once per request). A driver that
#: would read the call's replies on the sending thread may then return once
#: the request is on its way (see "A caller that waits elsewhere" above)::
#:
#:     late = caller_elsewhere.get()
#:     if late is not None:
#:         self.io.submit(lambda: self._send_watched(request, on_failure=late))
#:         return
caller_elsewhere: ContextVar[Callable[[RPCError], None] | None] = ContextVar(
    "rpccore_caller_elsewhere", default=None)


class Incoming(abc.ABC):
    """One message a driver delivered to a subscription.

    :ivar body: the envelope bytes exactly as sent
    """

    body: bytes

    @property
    def can_reply(self) -> bool:
        """Whether the sender asked for replies (sent with ``on_reply``)."""
        return True

    @abc.abstractmethod
    def reply(self, body: bytes) -> None:
        """Send ``body`` back to the sender's ``on_reply`` handler.

        Called any number of times per message (keepalives, stream items,
        then the final reply), possibly from another thread than the one
        that delivered it, but never from two threads at once for one
        message; the bodies must reach ``on_reply`` in the order of these
        calls. Must not raise for a sender that has gone away: a reply
        nobody waits for is dropped (and may be counted).

        :raises TransportError: the reply could not be handed to the backend
            (the server logs it; a later reply of the same request may still
            be tried).
        """

    def release_thread(self, expected: float | None = None) -> bool:
        """Let the calling thread (the one ``on_message`` was called on) run
        this message for as long as it takes, another thread of the driver
        taking over its I/O meanwhile (leader/follower). Only called from
        ``on_message``, and only by a server with worker threads on a driver
        with :attr:`Driver.leader_follower` set.

        :param expected: seconds the endpoint method took in its recent runs
            (``None``: not known yet). A driver may use it to decide what
            else waits for this thread: the zmq driver keeps the requests
            read with this one on its thread only when it is expected to be
            quick, and hands them to another thread otherwise.
        :returns: True when the caller may now block (the driver's I/O goes
            on without this thread, or will once the request takes long);
            False when it must return at once (the server then queues the
            message for its workers). The default returns False.
        """
        return False

    def requeue(self) -> bool:
        """Give this message back to the backend, to be delivered again later
        (to this or another listener of its pool), instead of :meth:`ack`.

        Called at most once per message and never together with :meth:`ack`.
        Used for notifications whose endpoint returned ``rpccore.REQUEUE``.

        :returns: True when the backend will deliver it again; False when it
            cannot (the default): the message is then done with, as if
            acknowledged, and the core counts and logs the lost requeue.
        """
        self.ack()
        return False

    def ack(self) -> None:
        """Tell the backend this message is done with (processed or dropped).

        Called exactly once per message, after the server has run it, from any
        thread. A backend that redelivers unacknowledged messages when a
        consumer dies gives casts at-least-once delivery through this. The
        default does nothing.
        """


class Subscription(abc.ABC):
    """What :meth:`Driver.subscribe` returns: a server's live consumers."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop consuming. After it returns ``on_message`` is not called again.

        Messages already handed to ``on_message`` may still be replied to and
        acknowledged. Idempotent; never raises for a lost connection.
        """


class Driver(abc.ABC):
    """Base class of every transport.

    :param cell: the cell this driver serves. Drivers use ``cell.name``,
        ``cell.options`` (the cell's option group, with the transport URL's
        query parameters already applied as overrides: ``cell.options.zmq_port``),
        ``cell.url`` (the parsed :class:`~rpccore.transport_url.TransportURL`),
        ``cell.max_message_size`` and ``cell.stats`` (counters: call
        ``cell.stats.incr("reconnects")``, ``"returned"``...).

    A constructor must not connect: connections are made lazily on first use
    (or by :meth:`connect`), so building an ``RPC`` never blocks.
    """

    #: True when :meth:`Incoming.release_thread` can hand the driver's I/O to
    #: another of its threads. A server with worker threads then runs a
    #: request on the thread that read it whenever fewer than ``workers`` of
    #: its requests are running (no hand-off between threads, which is most
    #: of a quick call's latency), and queues it for its workers otherwise.
    leader_follower: ClassVar[bool] = False

    #: Names of the driver's own counters (``cell.stats.incr(name)``), listed
    #: in ``rpc.stats()`` from the start, at zero.
    counters: ClassVar[tuple[str, ...]] = ()

    #: True when :meth:`send` can tell that nobody consumes a destination and
    #: raises :class:`~rpccore.Undeliverable` for it (AMQP mandatory flag).
    detects_undeliverable: ClassVar[bool] = False

    #: True when the backend keeps a pool's notifications while none of its
    #: listeners runs (see the module docstring); False: notifications reach
    #: the listeners running when they are sent, and no others.
    stores_notifications: ClassVar[bool] = False

    def __init__(self, cell: CellView) -> None:
        self.cell = cell

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """oslo.config options this driver adds to the cell's group."""
        return []

    def connect(self, timeout: float) -> None:
        """Connect now, so that configuration mistakes surface early.

        Used by ``rpccore check``. The default does nothing (for drivers that
        have nothing to connect to until they send).

        :raises TransportError: the backend could not be reached in
            ``timeout`` seconds, or refused the credentials; the message says
            which, without passwords.
        """

    def local_host(self) -> str | None:
        """The host string under which this process's servers are reached.

        Brokerless drivers return the address peers connect to (``rpccore
        check`` sends a host-directed call to it, needing no matchmaker).
        ``None`` (the default): hosts are plain names and any will do.
        """
        return None

    @abc.abstractmethod
    def send(self, dest: Destination, body: bytes, *,
             on_reply: ReplyHandler | None = None,
             confirm: bool = False,
             deadline: float | None = None) -> None:
        """Deliver ``body`` to ``dest``.

        - ``dest.fanout``: every server subscribed to ``dest.topic``;
        - ``dest.host`` set: the server of ``dest.topic`` on that host;
        - otherwise exactly one of the servers of ``dest.topic`` (work shared).

        :param on_reply: present for calls. Every reply to this message (there
            may be many: see the module docstring) must come back as
            ``on_reply(reply_body)``, in the order the server sent them, from
            any thread. The core passes the same handler for every call of a
            cell, so a driver keeps one reply channel (queue, socket) for all
            of them. With ``dest.fanout`` (a gather) every server answers,
            each to this handler. ``send`` may return once the request is on
            its way, or, on a driver that reads each call's replies on a
            connection of its own (zmq), once it has handed on the replies
            up to the last one (``on_reply`` returned False) or the deadline
            passed, unless :data:`caller_elsewhere` is set. The core sends
            the requests that it must watch while they run (heartbeat calls,
            streams) from a thread of its own, so both are correct.
        :param confirm: return only once the backend has taken responsibility
            for the message (publisher confirm); a driver without such a notion
            returns once the message is handed over.
        :param deadline: ``time.monotonic()`` value after which the caller has
            given up; ``send`` must not block past it.
        :raises Undeliverable: nobody consumes ``dest`` (only when the backend
            can tell; see :attr:`detects_undeliverable`). Drivers raise it for
            calls and confirmed casts; for plain casts they log and count
            (``returned``) instead.
        :raises TransportError: the backend is unreachable after the driver's
            retries, or the deadline passed while reconnecting.
        """

    def send_nowait(self, dest: Destination, body: bytes, *, on_reply: ReplyHandler,
                    deadline: float, on_failure: Callable[[RPCError], None]) -> bool:
        """Take a call whose caller waits elsewhere (an asyncio task) on the
        calling thread (an event loop's), if that cannot block: typically
        by queueing it for an I/O thread of the driver's own.

        It must never wait: for a socket, a lock another thread holds for
        long, a connection, a look-up or a broker's confirm. Whatever it
        would wait for, it returns False having sent nothing, and the core
        calls :meth:`send` from a thread of its own, with
        :data:`caller_elsewhere` set. True: the driver has the request; its
        replies go to ``on_reply`` from the driver's threads, and a failure
        found later to ``on_failure``, once, as for a ``send`` with
        :data:`caller_elsewhere` set. The default returns False.

        :raises InvalidDestination, Undeliverable, TransportError: what
            :meth:`send` raises, when it is known at once (nothing was sent).
        """
        return False

    @abc.abstractmethod
    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume what a server of ``dest`` must receive.

        That is ``dest.topic`` shared with every other server of the topic,
        ``(dest.topic, dest.host)`` when ``dest.host`` is set, and the topic's
        fanout. Returns once consuming, so that a message sent after it returns
        reaches this subscription. ``on_message`` returns at once unless
        the incoming message's :meth:`Incoming.release_thread` returned True
        (then it runs the request before returning), or the server runs its
        methods inline (``workers=0``). A driver calls ``on_message`` on its
        own threads, never on a sender's thread inside :meth:`send` (a
        streamed reply waits for the caller's credit, which that caller
        could then never send). Messages are acknowledged
        (:meth:`Incoming.ack`) only once run, so a driver bounds what a slow
        server holds by limiting unacknowledged deliveries (for example to
        ``cell.options.server_queue_size``).

        :raises TransportError: the backend could not be reached.
        """

    def notify(self, topic: str, body: bytes, *, confirm: bool = False,
               deadline: float | None = None) -> None:
        """Publish the notification ``body`` on the notification ``topic``:
        one copy to every pool that listens on it (see the module docstring).

        A topic nobody listens on is not an error: the notification is
        dropped (a driver may count it as ``returned``).

        :param confirm: return only once the backend has taken responsibility
            for the copies (publisher confirm); a driver that stores nothing
            returns once the message is handed over.
        :param deadline: ``time.monotonic()`` value; ``notify`` must not
            block past it.
        :raises TransportError: the backend is unreachable after the driver's
            retries, or the deadline passed while reconnecting.
        :raises ConfigError: the driver does not carry notifications (the
            default, for drivers written before they existed).
        """
        raise ConfigError(f"cell {self.cell.name}: the {self.cell.driver_name} driver "
                          "does not carry notifications")

    def listen(self, topic: str, pool: str | None,
               on_message: Callable[[Incoming], None]) -> Subscription:
        """Consume pool ``pool``'s copy of the notifications on ``topic``,
        shared with every other listener of the same pool and topic.

        Returns once consuming: a notification published after it returns
        reaches the pool. ``on_message`` is called as for :meth:`subscribe`
        (on the driver's threads, never on a publisher's); each message is
        acknowledged (:meth:`Incoming.ack`) or requeued
        (:meth:`Incoming.requeue`) once handled, and a driver bounds what it
        delivers unacknowledged (``cell.options.server_queue_size``).
        Replies are never asked for (``Incoming.can_reply`` may be False).

        :raises TransportError: the backend could not be reached.
        :raises ConfigError: the driver does not carry notifications (the
            default).
        """
        raise ConfigError(f"cell {self.cell.name}: the {self.cell.driver_name} driver "
                          "does not carry notifications")

    def delete_pool(self, topic: str, pool: str | None) -> None:
        """Forget pool ``pool`` of ``topic``: drop what is kept for it and
        keep nothing more for it until it listens again. Optional.

        Called for pools that were only ever temporary, when their last
        listener has stopped (``rpccore.testing.NotificationCollector``), so
        that a test suite does not leave a growing backlog behind per test.
        A driver that stores notifications deletes the pool's queue (if no
        listener of the pool still runs, the drop is not counted as
        ``notifications_dropped``); the default does nothing, which is right
        for drivers that store nothing. Never raises for a pool that does
        not exist or a backend that cannot be reached (it logs).
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection and stop every thread of this driver.

        Idempotent. Calls waiting on it fail with ``TransportError`` or time out.
        """
