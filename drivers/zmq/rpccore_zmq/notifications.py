"""Notifications from this client: one copy per pool, to one host of it.

Listeners register their host with the matchmaker under the notification
topic's key (:func:`~rpccore_zmq.protocol.notification_key`), which no RPC
topic can be; each host knows which pools listen on it. To notify, the
client needs every pool of the topic and the hosts of each, its **plan**:
it looks the key up, asks each host for its pools
(:func:`~rpccore_zmq.poolquery.ask_pools`), and sends each notification once
per pool, to one host of that pool in turn, naming the pool in the header.
There a listener of the pool takes it (:mod:`rpccore_zmq.pools`). A host
that refuses it (the pool stopped listening there) or does not acknowledge
it makes the copy move on to the next host of the pool, as a cast does.
So each pool gets each notification once, however many hosts its listeners
run on.

A plan is reused for ``zmq_lookup_cache_ttl`` seconds and then rebuilt in
the background while the old one stays in use, so a notifier that keeps
notifying never waits for a look-up. A topic's first notifications wait,
in order, in this process until its first plan is built (by a thread of
this sender, never the notifier's: a plain notification returns at once;
``confirm=True`` waits for the plan, then for the receipts), and so do the
notifications that find a plan older than twice ``zmq_lookup_cache_ttl``
(a notifier that notifies rarely never sends on an old plan). A pool that
starts listening therefore gets every notification sent more than twice
``zmq_lookup_cache_ttl`` later, and the time its hosts take to answer (a
rebuild that waits for a silent host keeps the old plan in use meanwhile). A topic that no host
listens to has no plan kept: the next notification looks again.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.poolquery import ask_pools

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore_zmq.client import Client
    from rpccore_zmq.registry import Registry

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

class Route:
    """One pool of a plan: its code as sent, its hosts, whose turn is next."""

    __slots__ = ("code", "hosts", "turn")

    def __init__(self, code: bytes, hosts: list[str]) -> None:
        self.code = code
        self.hosts = hosts
        self.turn = itertools.count()

    def in_turn(self) -> list[str]:
        """The hosts, starting with the next one in turn (round robin
        across notifications)."""
        hosts = self.hosts
        if len(hosts) == 1:
            return hosts
        start = next(self.turn) % len(hosts)
        return hosts[start:] + hosts[:start]


#: Plans kept before the ready ones are forgotten (topics are few in practice).
MAX_PLANS = 10000


class Plan:
    """The pools of one notification topic and their hosts."""

    __slots__ = ("routes", "expires", "refreshing", "waiting", "ready")

    def __init__(self) -> None:
        self.routes: list[Route] = []
        self.expires = 0.0
        self.refreshing = True
        #: notifications sent while the plan is (re)built and may not be
        #: used, in order; None while it may
        self.waiting: list[bytes] | None = []
        self.ready = threading.Event()


class NotificationSender:
    """Sends one driver's notifications (see the module docstring).

    :param client: the driver's client side, built on first use.
    """

    def __init__(self, cell: Cell, registry: Registry, client: Callable[[], Client]) -> None:
        self.cell = cell
        self._registry = registry
        self._client = client
        self._ttl: float = cell.options.zmq_lookup_cache_ttl
        self._max_waiting: int = cell.options.zmq_send_queue
        self._plans: dict[str, Plan] = {}
        self._lock = threading.Lock()
        self._todo: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def notify(self, topic: str, body: bytes, confirm: bool, deadline: float) -> None:
        """Send ``body`` to every pool of ``topic``.

        :raises TransportError: (``confirm``) the plan or a receipt did not
            come before ``deadline``, or no host of a pool acknowledged it.
        """
        plan = self._plans.get(topic)
        if plan is not None and plan.expires <= time.monotonic() and not plan.refreshing:
            self._expired(topic, plan)
        if plan is None or plan.waiting is not None:
            plan = self._queue_or_wait(topic, body, confirm, deadline)
            if plan is None:
                return  # queued for the plan
        outs = self._send(topic, plan.routes, body, confirm, deadline)
        if confirm:
            _confirmed(topic, outs, deadline)

    def _expired(self, topic: str, plan: Plan) -> None:
        """Rebuild ``plan``: in the background while it is younger than
        twice the TTL; older, what is notified waits for the new one. (While
        a rebuild runs, the old plan stays in use however long it takes.)"""
        with self._lock:
            if plan.waiting is not None or plan.refreshing:
                return
            if time.monotonic() - plan.expires > self._ttl:
                plan.waiting = []
                plan.ready.clear()
            plan.refreshing = True
            self._build_later(topic)

    def _queue_or_wait(self, topic: str, body: bytes, confirm: bool,
                       deadline: float) -> Plan | None:
        """Queue a plain notification until the topic's plan is built
        (None); a confirmed one waits for it (the plan)."""
        with self._lock:
            plan = self._plans.get(topic)
            if plan is None:
                if len(self._plans) >= MAX_PLANS:
                    self._plans = {t: p for t, p in self._plans.items() if p.waiting is not None}
                plan = self._plans[topic] = Plan()
                self._build_later(topic)
            waiting = plan.waiting
            if waiting is not None and not confirm:
                if len(waiting) < self._max_waiting:
                    waiting.append(body)
                else:
                    self._lost(topic, 1, f"{len(waiting)} wait already for the hosts "
                                         f"listening to it to answer (zmq_send_queue)")
                return None
        if not plan.ready.wait(max(0.0, deadline - time.monotonic())):
            raise TransportError(f"the hosts listening to notifications of {topic!r} did not "
                                 f"say which pools listen there in time")
        return plan

    def _send(self, topic: str, routes: list[Route], body: bytes, confirm: bool,
              deadline: float) -> list[Outgoing]:
        client = self._client()
        name = topic.encode("utf-8")
        outs = []
        for route in routes:
            out = Outgoing(protocol.NOTIFY, name, route.code, body, route.in_turn(), False,
                           confirm, deadline)
            client.send(out)
            outs.append(out)
        return outs

    def _lost(self, topic: str, count: int, why: object) -> None:
        self.cell.stats.incr("zmq_lost_notifications", count)
        _RATELOG.warning(f"notify:{topic}", "cell %s: %d notification(s) of %r dropped: %s",
                         self.cell.name, count, topic, why)

    # -- building plans (the sender's own thread) --------------------------------

    def _build_later(self, topic: str) -> None:
        if self._thread is None:
            with self._thread_lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, daemon=True,
                        name=f"rpccore-zmq-notify-{self.cell.name}")
                    self._thread.start()
        self._todo.put(topic)

    def _run(self) -> None:
        while (topic := self._todo.get()) is not None:
            try:
                self._build(topic)
            except Exception:
                LOG.exception("cell %s: finding the pools of %r failed", self.cell.name, topic)

    def _build(self, topic: str) -> None:
        plan = self._plans.get(topic)
        if plan is None:
            return
        failed: RPCError | None = None
        try:
            hosts = self._registry.lookup(protocol.notification_key(topic))
        except RPCError as exc:
            hosts, failed = [], exc
        routes = self._routes(topic, hosts) if hosts else []
        plan.routes, plan.expires, plan.refreshing = routes, time.monotonic() + self._ttl, False
        if not hosts:  # not kept: a listener that registers is seen at once
            with self._lock:
                if self._plans.get(topic) is plan:
                    del self._plans[topic]
        self._flush(topic, plan, failed)

    def _routes(self, topic: str, hosts: list[str]) -> list[Route]:
        client = self._client()
        answers = ask_pools(client.peers, client.calls.pool, hosts, topic,
                            client.peers.receipt_timeout)
        by_pool: dict[str, list[str]] = {}
        for host in hosts:  # in the matchmaker's order
            for code in answers.get(host, ()):
                by_pool.setdefault(code, []).append(host)
        return [Route(code.encode("utf-8"), pool_hosts) for code, pool_hosts in by_pool.items()]

    def _flush(self, topic: str, plan: Plan, failed: RPCError | None) -> None:
        """Send what waited for the plan, in order, then let notifiers send
        directly (a notification queued meanwhile goes out first)."""
        deadline = time.monotonic() + self.cell.rpc_response_timeout
        while True:
            with self._lock:
                batch = plan.waiting
                if not batch:
                    plan.waiting = None
                    break
                plan.waiting = []
            if failed is not None:
                self._lost(topic, len(batch), f"the matchmaker failed: {failed}")
                continue
            for body in batch:
                self._send(topic, plan.routes, body, False, deadline)
        plan.ready.set()

    def close(self) -> None:
        """Stop the thread that builds plans."""
        self._todo.put(None)


def _confirmed(topic: str, outs: list[Outgoing], deadline: float) -> None:
    """Wait for every pool's copy to be acknowledged; a pool that stopped
    listening meanwhile (every host refused) is not an error.

    :raises TransportError: no host of a pool acknowledged its copy in time.
    """
    for out in outs:
        assert out.done is not None
        if not out.done.wait_until(deadline):
            raise TransportError(f"no host acknowledged the notification of {topic!r} in time")
        if not isinstance(out.done.error, Undeliverable):
            out.done.result(0)
