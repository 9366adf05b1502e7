"""What the client knows of its peers, shared by the cast sender
(:mod:`rpccore_zmq.casts`) and the call path (:mod:`rpccore_zmq.calls`): the
endpoint of each host string, when each endpoint was last heard from on any
connection, which endpoints are dead, and the sequence numbers of requests.

A peer is *dead* once it left a request unacknowledged for
``zmq_receipt_timeout`` and sent nothing at all meanwhile (a busy peer
working through a backlog keeps sending receipts as it reads, so it is not
taken for dead however long its queue). Requests then avoid it, and it is
pinged until it answers again (:meth:`PeerTable.mark_alive`).
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

from rpccore.ratelog import RateLimitedLog
from rpccore_zmq import protocol
from rpccore_zmq.outgoing import Outgoing

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)


class PeerTable:
    """Endpoints, liveness and sequence numbers of one client.

    Read from any thread. Endpoints are marked dead on the client's loop,
    and alive by whichever thread reads a receipt or a pong (a set's add and
    discard need no lock of ours).
    """

    def __init__(self, cell: CellView) -> None:
        self.cell = cell
        self.stats = cell.stats
        self.port: int = cell.options.zmq_port
        self.receipt_timeout: float = cell.options.zmq_receipt_timeout
        #: numbers of requests (and pings), increasing, for every connection
        self.seq = itertools.count(1)
        #: when anything last came from an endpoint, on any connection
        self.heard: dict[str, float] = {}
        #: endpoints that missed a receipt and have not answered since
        self.dead: set[str] = set()
        self._endpoints: dict[str, str] = {}

    def endpoint_of(self, host: str) -> str:
        """The endpoint of a host string (remembered).

        :raises ValueError: a malformed host string.
        """
        found = self._endpoints.get(host)
        if found is None:
            found = self._endpoints[host] = protocol.endpoint(host, self.port)
        return found

    def is_dead(self, host: str) -> bool:
        """Whether ``host`` missed a receipt and has not answered since."""
        return bool(self.dead) and self.endpoint_of(host) in self.dead

    def next_host(self, out: Outgoing) -> str | None:
        """The first of ``out``'s candidates not tried yet, a live one if
        there is any; ``None`` when every candidate was tried."""
        if not out.tried and not self.dead:  # the common case
            first = out.candidates[0]
            if first in self._endpoints:  # a host string known to parse
                return first
        left = [h for h in out.candidates if h not in out.tried]
        for host in left:
            try:
                if self.endpoint_of(host) not in self.dead:
                    return host
            except ValueError:
                continue
        return left[0] if left else None

    def silent(self, endpoint: str, since: float) -> bool:
        """Whether nothing came from ``endpoint`` after ``since``."""
        return self.heard.get(endpoint, 0.0) < since

    def mark_dead(self, endpoint: str, why: str) -> None:
        """(Loop) ``endpoint`` stopped answering."""
        if endpoint not in self.dead:
            self.dead.add(endpoint)
            LOG.warning("cell %s: %s is not answering: %s", self.cell.name, endpoint, why)
        self.stats.incr("zmq_peer_failures")

    def mark_alive(self, endpoint: str) -> None:
        """(Any thread) ``endpoint`` answered."""
        if self.dead and endpoint in self.dead:
            self.dead.discard(endpoint)
            LOG.info("cell %s: %s answers again", self.cell.name, endpoint)

    def malformed(self, endpoint: str, why: str) -> None:
        """Count and log a message from ``endpoint`` that is not of the protocol."""
        self.stats.incr("dropped_malformed")
        _RATELOG.warning("malformed-reply", "cell %s: dropped a malformed message from %s: %s",
                         self.cell.name, endpoint, why)
