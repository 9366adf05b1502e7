"""What a driver, a reply handler and a responder may use of their cell.

:class:`rpccore.cell.Cell` builds drivers, the reply correlation
(:class:`~rpccore.replies.PendingCalls`) and stream controls; those in turn
only read a few of the cell's attributes. They are typed against the
:class:`CellView` protocol below rather than the class, so that the cell
module depends on them and not the other way round (no import cycle), and so
that a third-party driver's tests can hand it any object with these
attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rpccore.matchmaker import MatchMaker
    from rpccore.stats import CellStats
    from rpccore.transport_url import TransportURL


class ReplySink(Protocol):
    """The cell's one reply handler (:meth:`PendingCalls.on_reply`)."""

    def on_reply(self, body: bytes) -> bool:
        """Take one reply envelope's bytes; True while its request waits
        for more (see :data:`rpccore.driver.ReplyHandler`)."""
        ...


class CellView(Protocol):
    """The attributes of a cell that drivers use.

    ``name`` names the cell in logs and errors; ``options`` is its option
    group (``options.zmq_port``) with the transport URL's query parameters
    applied; ``url`` the parsed transport URL; ``stats`` its counters
    (``stats.incr("reconnects")``); ``max_message_size`` and ``secret_key``
    bound and sign envelopes; ``pending_calls`` takes replies a driver reads
    on a connection of its own.
    """

    name: str
    stats: CellStats
    max_message_size: int
    secret_key: bytes | None
    rpc_response_timeout: float

    @property
    def url(self) -> TransportURL:
        """The cell's parsed transport URL."""
        ...

    @property
    def options(self) -> Any:
        """The cell's option group."""
        ...

    @property
    def driver_name(self) -> str:
        """The driver's entry point name (the URL's scheme)."""
        ...

    @property
    def pending_calls(self) -> ReplySink:
        """The cell's reply handler."""
        ...

    def load_matchmaker(self, name: str) -> MatchMaker:
        """The matchmaker plugin ``name``, built for this cell."""
        ...
