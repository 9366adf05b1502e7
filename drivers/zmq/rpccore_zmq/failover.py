"""The one failover routine of the client, for casts and calls alike.

A request goes to the first live host of its candidates. A host that refuses
it (nobody consumes it there), cannot be sent to, or does not acknowledge it
within ``zmq_receipt_timeout`` makes it move on to the next one; when none is
left, the sender gets :func:`failure`: :class:`~rpccore.Undeliverable` if
every host refused it, else :class:`~rpccore.TransportError`.
"""

from __future__ import annotations

from collections.abc import Callable

from rpccore.errors import TransportError, Undeliverable
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable


class NextHost(Exception):
    """This host did not take the request: try the next one. The message
    (if any) says why; a refusal also counts in ``Outgoing.refusals``."""


#: Sends a request to ``(host, endpoint)``; raises NextHost when it did not go.
TryHost = Callable[[str, str], None]


def fail_over(out: Outgoing, peers: PeerTable, try_host: TryHost) -> bool:
    """Try ``out`` on its candidate hosts in turn (see
    :meth:`PeerTable.next_host`) until ``try_host`` takes it: True then,
    False when no host is left (``out.tried``, ``out.why`` and
    ``out.refusals`` say what happened; :func:`failure` makes the error).
    Every host after the first counts as ``zmq_rerouted``."""
    while True:
        host = peers.next_host(out)
        if host is None:
            return False
        if out.tried:
            peers.stats.incr("zmq_rerouted")
        out.tried.append(host)
        try:
            endpoint = peers.endpoint_of(host)
        except ValueError as exc:
            out.why = str(exc)
            continue
        try:
            try_host(host, endpoint)
        except NextHost as exc:
            if exc.args:
                out.why = str(exc)
            continue
        return True


def failure(out: Outgoing) -> Exception:
    """The error for a request no host took: :class:`Undeliverable` when
    every host tried refused it (nobody consumes it), else
    :class:`TransportError`."""
    topic = out.topic.decode("utf-8", "replace")
    where = ", ".join(out.tried) or "no host"
    if out.tried and out.refusals == len(out.tried):
        return Undeliverable(f"nobody consumes topic {topic!r} on {where}")
    return TransportError(f"message to topic {topic!r} not delivered to {where}: "
                          f"{out.why or 'no receipt'}")
