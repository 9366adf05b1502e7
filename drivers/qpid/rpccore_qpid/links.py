"""What every sender and receiver of the driver shares.

Each :class:`~rpccore_qpid.sender.OutgoingLink` and
:class:`~rpccore_qpid.receiver.IncomingLink` owns at most one proton link
at a time, always on a session of its own: RabbitMQ ends the whole session
when an attach fails, which would otherwise kill unrelated links. All
``io_*`` methods run on the :class:`~rpccore_qpid.connection.IoLoop`'s I/O
thread only.
"""

from __future__ import annotations

import itertools

from proton import Condition, Connection, Link, Session

#: Unique link names within a process.
link_names = itertools.count(1)


def describe(cond: Condition | None) -> str:
    """``name: description`` of an AMQP error condition."""
    if cond is None:
        return "no reason given"
    return f"{cond.name}: {cond.description}" if cond.description else str(cond.name)


class LinkOwner:
    """What the I/O loop tells every link object about the connection."""

    def io_connected(self, conn: Connection) -> None:
        """A (new) connection is open."""

    def io_lost(self) -> None:
        """The connection went away; links and deliveries of it are void."""

    def io_closed(self) -> None:
        """The driver is closing: fail or drop whatever is waiting."""

    def io_failed(self, cond: Condition | None, endpoint: Link | Session) -> None:
        """The broker closed our link or session (with ``cond``)."""


def open_session(conn: Connection, owner: LinkOwner) -> Session:
    """A new session on ``conn`` for one link of ``owner`` (its errors go to it)."""
    session = conn.session()
    session.rpccore_link = owner
    session.open()
    return session
