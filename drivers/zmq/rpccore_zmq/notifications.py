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

The first notification of a topic builds its plan on the notifying thread
(one look-up and one round trip to the hosts, at once; other threads
notifying the topic meanwhile wait for the same plan). From then on a
thread of this sender rebuilds the plan every ``zmq_lookup_cache_ttl``
while the topic is in use, and notifiers never wait for it; a plan unused
for :data:`IDLE_PLAN` seconds is forgotten. So a pool that starts listening
gets every notification sent twice ``zmq_lookup_cache_ttl`` (and the time
its hosts take to answer) after it started. A host that does not answer is
taken as silent (marked dead, and pinged until it answers), so that the
next plans do not wait for it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.driverkit import Completion
from rpccore.errors import RPCError, TransportError, Undeliverable
from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.poolquery import ask_pools

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore_zmq.client import Client
    from rpccore_zmq.registry import Registry

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)

#: Seconds a plan nobody used is kept (and rebuilt) before it is forgotten.
IDLE_PLAN = 30.0


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
    """The pools of one notification topic, their hosts, and when it was
    built and last used."""

    __slots__ = ("routes", "expires", "used")

    def __init__(self, routes: list[Route], expires: float) -> None:
        self.routes = routes
        self.expires = expires
        self.used = time.monotonic()


class NotificationSender:
    """Sends one driver's notifications (see the module docstring).

    :param client: the driver's client side, built on first use.
    """

    def __init__(self, cell: CellView, registry: Registry, client: Callable[[], Client]) -> None:
        self.cell = cell
        self._registry = registry
        self._client = client
        self._ttl: float = cell.options.zmq_lookup_cache_ttl
        self._plans: dict[str, Plan] = {}
        #: first plans being built, by topic (other notifiers wait for them)
        self._building: dict[str, Completion[Plan]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def notify(self, topic: str, body: bytes, confirm: bool, deadline: float) -> None:
        """Send ``body`` to every pool of ``topic``.

        :raises TransportError: the matchmaker failed and knows nothing of
            the topic; (``confirm``) no host of a pool acknowledged its copy
            before ``deadline``.
        """
        plan = self._plans.get(topic)
        if plan is None:
            plan = self._first_plan(topic, deadline)
        else:
            plan.used = time.monotonic()
        client = self._client()
        name = topic.encode("utf-8")
        outs = []
        for route in plan.routes:
            out = Outgoing(protocol.NOTIFY, name, route.code, body, route.in_turn(), False,
                           confirm, deadline)
            client.send(out)
            outs.append(out)
        if confirm:
            _confirmed(topic, outs, deadline)

    def _first_plan(self, topic: str, deadline: float) -> Plan:
        """Build the plan of ``topic`` on this thread, or wait for the one
        another thread is building."""
        with self._lock:
            building = self._building.get(topic)
            mine = building is None
            if building is None:
                building = self._building[topic] = Completion()
        if not mine:
            if not building.wait_until(deadline):
                raise TransportError(f"the hosts listening to notifications of {topic!r} did "
                                     f"not say in time which pools listen there")
            return building.result(0)
        try:
            plan = self._build(topic, min(deadline - time.monotonic(),
                                          self._client().peers.receipt_timeout))
            if self._ttl > 0:
                self._plans[topic] = plan
                self._start_refreshing()
            building.set_result(plan)
            return plan
        except BaseException as exc:
            building.set_error(exc)
            raise
        finally:
            with self._lock:
                del self._building[topic]

    def _build(self, topic: str, timeout: float) -> Plan:
        """A new plan of ``topic``: the hosts under its key (asked afresh),
        and the pools each of them says listen there.

        :raises TransportError: the matchmaker knows nothing and cannot
            reach its backend.
        """
        key = protocol.notification_key(topic)
        self._registry.forget(key)
        hosts = self._registry.lookup(key)
        routes: list[Route] = []
        if hosts:
            client = self._client()
            answers, silent = ask_pools(client.peers, client.calls.pool, hosts, topic,
                                        max(timeout, 0.0))
            for host in silent:  # so that the next plans do not wait for it
                client.casts.mark_silent(host, f"no answer from {host} about the pools "
                                               f"of {topic!r} within {timeout:g} s")
            by_pool: dict[str, list[str]] = {}
            for host in hosts:  # in the matchmaker's order
                for code in answers.get(host, ()):
                    by_pool.setdefault(code, []).append(host)
            routes = [Route(code.encode("utf-8"), pool_hosts)
                      for code, pool_hosts in by_pool.items()]
        return Plan(routes, time.monotonic() + self._ttl)

    # -- keeping plans fresh (the sender's own thread) ----------------------------

    def _start_refreshing(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(
                        target=self._refresh, daemon=True,
                        name=f"rpccore-zmq-notify-{self.cell.name}")
                    self._thread.start()

    def _refresh(self) -> None:
        """Rebuild the plans in use once they expire; forget idle ones."""
        while not self._stop.wait(self._ttl / 2):
            now = time.monotonic()
            for topic, plan in list(self._plans.items()):
                if now - plan.used > IDLE_PLAN:
                    del self._plans[topic]
                elif plan.expires <= now and not self._stop.is_set():
                    self._rebuild(topic, plan)

    def _rebuild(self, topic: str, plan: Plan) -> None:
        try:
            fresh = self._build(topic, self._client().peers.receipt_timeout)
        except RPCError as exc:  # the old plan stays in use; the next round retries
            _RATELOG.warning(f"plan:{topic}", "cell %s: could not find the pools listening "
                             "to notifications of %r: %s", self.cell.name, topic, exc)
            return
        except Exception:
            LOG.exception("cell %s: finding the pools of %r failed", self.cell.name, topic)
            return
        fresh.used = plan.used
        self._plans[topic] = fresh

    def close(self) -> None:
        """Stop the thread that keeps plans fresh."""
        self._stop.set()


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
