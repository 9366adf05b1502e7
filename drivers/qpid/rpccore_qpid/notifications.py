"""What notifications need of the qpid driver besides its links: the error
of a cell that cannot carry them, the bounds of a pool's queue, and what
the broker's refusals of a notification mean.

Notifications need RabbitMQ 4 (v2 addresses). Each listener pool has a
durable queue (:func:`rpccore_qpid.addressing.pool_queue`) that the
management node declares with the retention bounds below and binds to
``amq.direct`` with the topic's notification key; notifiers send durable
messages to ``/exchanges/amq.direct/KEY``, so the broker copies each into
every pool's queue, and its outcome tells the notifier what became of it:

- ``accepted``: every pool queue bound to the key took it (on disk, for
  these durable messages in durable queues); ``confirm=True`` returns then;
- ``rejected``: at least one pool's queue is full (``x-overflow =
  reject-publish``) and refused it, while pools with room took it. It is
  final: sending it again would give those pools a second copy, and a full
  queue stays full while its listeners are down. Counted as
  ``notifications_dropped`` and logged (:meth:`Outcomes.refused`);
- ``released``: no queue is bound to the key (no pool ever listened on the
  topic, or every pool's queue expired): not an error (see
  :meth:`rpccore.Driver.notify`), counted as ``returned``.

RabbitMQ 3.x's AMQP 1.0 plugin (v1 addresses) can give none of this: it
cannot bind a named queue to an exchange, declares queues without
arguments, and aborts the connection of a publisher whose message a full
queue refuses (the README has what was tried). There a notifier or
listener raises :func:`unsupported`'s error at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rpccore.errors import ConfigError, RPCError
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cellview import CellView

LOG = logging.getLogger(__name__)
#: the outcome a full pool queue gives (``x-overflow = reject-publish``)
REJECTED = "rejected"


def unsupported(cell: str, addresses: str) -> ConfigError:
    """The error of a notifier or listener in a cell with v1 addresses."""
    return ConfigError(
        f"cell {cell}: the qpid driver carries notifications only on RabbitMQ 4 (v2 AMQP "
        f"1.0 addresses); this cell uses {addresses} addresses, that is RabbitMQ 3.x's "
        "rabbitmq_amqp1_0 plugin, which cannot bind a named queue to an exchange, so no "
        "listener pool can exist there. Either upgrade the broker to RabbitMQ 4 (with "
        "amqp_addresses = auto or v2 in this cell), or send notifications through a rabbit "
        "cell: [rpccore] notification_cell = a cell whose transport_url is rabbit://...")


def pool_arguments(options: Any) -> dict[str, Any]:
    """The queue arguments of a pool's queue, from the cell's ``options``:
    at most ``notification_max_queue_length`` messages (the broker refuses
    more: ``rejected``), each kept ``notification_ttl`` seconds, the queue
    deleted by the broker after ``notification_pool_expiry`` seconds without
    a listener (0: never)."""
    arguments: dict[str, Any] = {
        "x-max-length": int(options.notification_max_queue_length),
        "x-overflow": "reject-publish",
        "x-message-ttl": max(1, int(options.notification_ttl * 1000)),
    }
    if options.notification_pool_expiry:
        arguments["x-expires"] = int(options.notification_pool_expiry) * 1000
    return arguments


class Outcomes:
    """What the broker's refusal of a notification means, for one cell
    (``Outgoing.refused``; I/O thread)."""

    def __init__(self, cell: CellView) -> None:
        self.cell = cell
        self._ratelog = RateLimitedLog(LOG)

    def refused(self, outcome: str, address: str) -> RPCError | None:
        """Count and log the outcome; never an error for the notifier (its
        ``confirm=True`` returns: the broker did answer for the message)."""
        if outcome == REJECTED:
            self.cell.stats.incr("notifications_dropped")
            self._ratelog.warning(
                "dropped", "cell %s: a notification to %s was dropped: the queue of a "
                "listener pool refused it (full: over notification_max_queue_length, "
                "its listeners down or too slow); pools with room have it",
                self.cell.name, address)
        else:
            self.cell.stats.incr("returned")
            LOG.debug("cell %s: no listener pool takes the notifications sent to %s "
                      "(the broker %s it): dropped", self.cell.name, address, outcome)
        return None
