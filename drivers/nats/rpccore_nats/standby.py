"""Confirmed casts over several JetStream streams, so that losing a node does
not stop them for seconds (``nats_cast_streams``).

A JetStream stream stores nothing while it has no leader. When the node
leading it dies, the stream's other replicas elect a new leader once their
election timeout passes: 4-9 s in nats-server 2.9 (4.3-8.6 s measured
with 2.9.10), not configurable there. With one stream, every confirmed cast of the exchange waits
that long.

With ``nats_cast_streams = n`` (n > 1) an exchange has ``n`` work-queue
streams of confirmed casts (:meth:`rpccore_nats.naming.Subjects.cast_stream_name`),
each with its own raft group and leader, and servers consume all of them:

- A sender publishes to the stream that last stored one of its confirmed
  casts (:class:`CastStreams`). When that stream does not acknowledge an
  attempt (no responders: no leader; no answer within the attempt), the
  next attempt goes to the next stream at once
  (:meth:`rpccore_nats.jetstream.JetStreamAdmin.publish`), and the sender
  stays on whichever stored it.
- That helps only while the streams' leaders are on different nodes.
  JetStream places leaders by its own elections, and after a node's loss
  its streams' leaders move to the survivors, possibly next to another
  cast stream's. Every server process therefore looks at the leaders every
  :data:`SPREAD_EVERY` s (plus up to as much again at random, so that many
  processes do not look together; sooner while a look found a stream without
  a leader or moved one) and, where two cast streams share a
  leader while a replica of the later one leads none, asks JetStream to
  move that stream's leader (a stepdown: a leader change without an
  election timeout, 0.28 s measured in 3 of 4 tries and 5.3 s in one,
  during which that stream's publishes fail over to the others).

What it costs and what it changes:

- ``n`` JetStream consumers per topic (and per topic and host) instead of
  one; ``n`` streams per exchange.
- Order: a sender's confirmed casts stay in order while one stream stores
  them all; around a failover, casts stored in the new stream may be run
  before ones the old stream still holds (it delivers them once it has a
  leader again).
- De-duplication is per stream: a confirmed cast whose acknowledgement was
  lost with the dying leader, stored again by the next stream, may run
  twice. Confirmed casts are at least once in any case.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from nats.aio.client import Client

from rpccore_nats.connection import safe_text
from rpccore_nats.jetstream import ADMIN_TIMEOUT, stream_info

if TYPE_CHECKING:
    from rpccore.destination import Destination
    from rpccore_nats.naming import Subjects

LOG = logging.getLogger(__name__)

#: Seconds between two looks at the cast streams' leaders (see the module
#: docstring), to which up to as much again is added at random.
SPREAD_EVERY = 30.0
#: Seconds to the next look after one that moved a leader or found a stream
#: without one (plus up to as much again at random).
RECHECK = 1.0

_STEPDOWN = "$JS.API.STREAM.LEADER.STEPDOWN."
#: The leader :func:`leaders` gives for streams of a server without a cluster.
SINGLE_SERVER = "(single server)"


class CastStreams:
    """The confirmed-cast streams of one exchange, and which one this
    driver publishes to first (the last that stored one of its casts)."""

    def __init__(self, subjects: Subjects, count: int) -> None:
        self.subjects = subjects
        self.count = count
        self.names = [subjects.cast_stream_name(k) for k in range(count)]
        self.preferred = 0

    def subject(self, dest: Destination, stream: int) -> str:
        """Where a confirmed cast to ``dest`` goes in stream number ``stream``."""
        if dest.host is not None:
            return self.subjects.confirmed_direct(dest.topic, dest.host, stream)
        return self.subjects.confirmed_work(dest.topic, stream)

    def targets(self, dest: Destination) -> list[tuple[str, str]]:
        """``(subject, stream)`` of every stream, the preferred one first
        (what :meth:`rpccore_nats.jetstream.JetStreamAdmin.publish` takes)."""
        order = [(self.preferred + i) % self.count for i in range(self.count)]
        return [(self.subject(dest, k), self.names[k]) for k in order]

    def stored(self, stream: str) -> None:
        """Stream ``stream`` stored a cast that was first tried elsewhere:
        publish there first from now on."""
        self.preferred = self.names.index(stream)


async def leaders(client: Client, names: list[str]) -> list[tuple[str | None, set[str]]]:
    """For each stream, its leader's server name (``None``: none now) and the
    names of its replicas that are current (could lead it at once)."""
    found: list[tuple[str | None, set[str]]] = []
    for name in names:
        info = await stream_info(client, name)
        cluster = info.cluster
        if cluster is None:  # a single server: it leads every stream, nothing to spread
            found.append((SINGLE_SERVER, set()))
            continue
        current = {peer.name for peer in cluster.replicas or ()
                   if peer.current and not peer.offline and peer.name}
        found.append((cluster.leader, current))
    return found


def to_move(seen: list[tuple[str | None, set[str]]]) -> int | None:
    """The index of a stream whose leader should move: the first whose
    leader also leads an earlier stream while one of its current replicas
    leads none. ``None``: nothing to move."""
    leading = {leader for leader, _ in seen if leader}
    earlier: set[str] = set()
    for index, (leader, current) in enumerate(seen):
        if leader is None:
            continue
        if leader in earlier and current - leading:
            return index
        earlier.add(leader)
    return None


async def spread_once(client: Client, names: list[str], label: str) -> bool:
    """Look at the streams' leaders and move one leader if two share a node.

    :returns: whether that is settled: every stream has a leader and none
        had to move (False: look again soon).
    """
    seen = await leaders(client, names)
    index = to_move(seen)
    if index is None:
        return all(leader for leader, _ in seen)
    name = names[index]
    LOG.info("%s: JetStream streams of confirmed casts share a leader node; moving the "
             "leader of %s so that losing one node leaves another stream to fail over to",
             label, name)
    await client.request(_STEPDOWN + name, b"", timeout=ADMIN_TIMEOUT)
    return False


async def keep_spread(client_of: Callable[[], Client], names: list[str], label: str,
                      every: float = SPREAD_EVERY) -> None:
    """:func:`spread_once` (on the connection ``client_of()`` gives) now and
    every ``every`` s (plus a random part), until cancelled; after
    :data:`RECHECK` s (plus a random part) while not settled (a leader
    moved or missing). Failures (JetStream busy, a node down) are logged at
    debug level and count as not settled."""
    while True:
        settled = False
        try:
            settled = await spread_once(client_of(), names, label)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            LOG.debug("%s: looking at the confirmed-cast streams' leaders: %s", label,
                      safe_text(exc))
        pause = every if settled else RECHECK
        await asyncio.sleep(pause + random.uniform(0.0, pause))
