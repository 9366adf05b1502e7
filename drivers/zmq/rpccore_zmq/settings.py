"""What a listener's socket is set up with, and which cells may share it.

Servers of several cells (or ``RPC`` objects) of one process that bind the
same address and port share one socket (see :mod:`rpccore_zmq.listener`).
What decides who may connect and what a message may weigh must then be the
same for all of them: the CURVE server keys and allowed clients, and
``max_message_size``. A cell that differs gets a
:class:`~rpccore.ConfigError` naming the setting, never the keys. What only
tunes the socket (``zmq_send_queue``, the TCP keepalive interval) comes from
the first cell, and a cell that differs is told so in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rpccore_zmq.curve import CurveKeys, curve_keys

if TYPE_CHECKING:
    from rpccore.cellview import CellView


@dataclass(frozen=True)
class ListenerSettings:
    """A cell's settings for the socket its servers listen on."""

    max_size: int
    queue_size: int
    keepalive: float
    #: the cell's CURVE keys (None: CURVE off); only their server side
    #: (public and secret key, allowed clients) must match between cells
    curve: CurveKeys | None = field(repr=False, compare=False)

    @classmethod
    def of(cls, cell: CellView) -> ListenerSettings:
        """The settings of ``cell``.

        :raises ConfigError: malformed CURVE keys.
        """
        options = cell.options
        return cls(cell.max_message_size, options.zmq_send_queue,
                   options.zmq_heartbeat_interval, curve_keys(cell))

    def _server_keys(self) -> tuple[bytes, bytes | None, frozenset[bytes]] | None:
        curve = self.curve
        if curve is None:
            return None
        return curve.server_public, curve.server_secret, curve.allowed_clients

    def conflicts(self, first: ListenerSettings) -> list[str]:
        """What differs from the settings ``first`` of the cell that opened
        the listener and must not (empty: this cell may share the socket);
        named for an error message, without keys."""
        differ = []
        if self._server_keys() != first._server_keys():
            differ.append("CURVE keys (zmq_curve_*)")
        if self.max_size != first.max_size:
            differ.append(f"max_message_size ({first.max_size} there, {self.max_size} here)")
        return differ

    def tuned_otherwise(self, first: ListenerSettings) -> bool:
        """Whether the socket's tuning (``zmq_send_queue``, keepalive)
        differs from ``first``'s, which the socket keeps."""
        return (self.queue_size, self.keepalive) != (first.queue_size, first.keepalive)
