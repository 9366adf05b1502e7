"""Destinations into requests (:class:`~rpccore_zmq.outgoing.Outgoing`): the
host a destination names, or the hosts of its topic from the cell's
matchmaker (:mod:`rpccore_zmq.registry`), taken in turn."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from rpccore.destination import Destination
from rpccore.errors import InvalidDestination, TransportError, Undeliverable
from rpccore_zmq import protocol
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.registry import Registry

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore_zmq.client import Client

LOG = logging.getLogger(__name__)

#: the hosts of a topic (:meth:`Registry.lookup`), or ``None`` when they are
#: not known without asking the matchmaker (:meth:`Registry.cached`)
HostsOf = Callable[[str], "list[str] | None"]


def wire_topic(dest: Destination) -> bytes:
    """``dest``'s topic as it travels.

    :raises InvalidDestination: an RPC topic that reads as a notification key.
    """
    if dest.topic.startswith(protocol.NOTIFICATION_KEY_PREFIX):
        protocol.check_topic(dest.topic)  # raises
    return dest.topic.encode("utf-8")


class Addressing:
    """Builds the requests of one driver's sends."""

    def __init__(self, cell: CellView, registry: Registry) -> None:
        self.cell = cell
        self.registry = registry
        self._turn = itertools.count()

    def casts(self, client: Client, dest: Destination, topic: bytes, body: bytes,
              confirm: bool, deadline: float) -> list[Outgoing]:
        """A cast's requests: one, or one per host of a fanout; none (counted
        and logged) when nobody consumes a plain cast's topic.

        :raises InvalidDestination: ``dest.host`` is not a usable address.
        :raises Undeliverable: (``confirm``) the topic has no host.
        :raises TransportError: (plain host-directed casts) see :meth:`directed`.
        """
        kind = protocol.FANOUT if dest.fanout else protocol.CAST
        if dest.host is not None:
            return [self.directed(client, dest.host, kind, topic, body, confirm, deadline)]
        hosts = self.registry.lookup(dest.topic)
        if not hosts:
            self.nobody(dest, confirm)
            return []
        if dest.fanout:
            return [Outgoing(kind, topic, h.encode("utf-8"), body, [h], True, confirm, deadline)
                    for h in hosts]
        return [Outgoing(kind, topic, b"", body, self.in_turn(hosts), False, confirm,
                         deadline)]

    def call(self, client: Client, dest: Destination, topic: bytes, body: bytes,
             deadline: float, hosts_of: HostsOf) -> Outgoing | None:
        """A call to ``dest`` (not a fanout), that nobody waits on yet (its
        caller runs it: :meth:`CallPath.call`); ``None`` when ``hosts_of``
        does not know the topic's hosts now.

        :raises InvalidDestination: ``dest.host`` is not a usable address.
        :raises Undeliverable: the topic has no host.
        """
        if dest.host is not None:
            return self.directed(client, dest.host, protocol.CALL, topic, body, False, deadline)
        hosts = hosts_of(dest.topic)
        if hosts is None:
            return None
        if not hosts:
            self.nobody(dest, True)  # raises
        return Outgoing(protocol.CALL, topic, b"", body, self.in_turn(hosts), False, False,
                        deadline)

    def in_turn(self, hosts: list[str]) -> list[str]:
        """The hosts of a topic, starting with the next one in turn (round
        robin across messages); a topic with one host is its list as it is."""
        if len(hosts) == 1:
            return hosts
        start = next(self._turn) % len(hosts)
        return hosts[start:] + hosts[:start]

    def directed(self, client: Client, host: str, kind: bytes, topic: bytes,
                 body: bytes, wait: bool, deadline: float) -> Outgoing:
        """A request to ``host``.

        :raises InvalidDestination: ``host`` is not a usable address.
        :raises TransportError: (plain casts) the host is known dead, or
            earlier casts to it were lost.
        """
        try:
            client.peers.endpoint_of(host)
        except ValueError as exc:
            raise InvalidDestination(str(exc)) from None
        if kind == protocol.CAST and not wait:
            lost = client.losses.take(host)
            if lost is not None:
                raise TransportError(f"{lost[0]} earlier cast(s) to host {host!r} were lost "
                                     f"({lost[1]}); this cast was not sent")
            if client.peers.is_dead(host):
                raise TransportError(f"host {host!r} is not answering; this cast was not sent")
        return Outgoing(kind, topic, host.encode("utf-8"), body, [host], True, wait, deadline)

    def nobody(self, dest: Destination, wait: bool) -> None:
        """The matchmaker knows no host of ``dest``'s topic: a plain cast
        is counted (``returned``) and logged.

        :raises Undeliverable: ``wait`` (a call, a confirmed cast).
        """
        if wait:
            raise Undeliverable(f"no host consumes {dest} in cell {self.cell.name} "
                                f"(matchmaker {self.cell.options.matchmaker})")
        self.cell.stats.incr("returned")
        LOG.warning("cell %s: cast to %s dropped: the matchmaker knows no host of it",
                    self.cell.name, dest)
