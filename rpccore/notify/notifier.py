"""The emitting side of notifications: ``rpc.notifier(publisher_id)``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.destination import Destination
from rpccore.errors import InvalidMessage, RPCError, TransportError
from rpccore.message import Context, context_dict
from rpccore.notify.message import check_topics, notification_envelope

if TYPE_CHECKING:
    from collections.abc import Iterable

    from rpccore.cell import Cell
    from rpccore.interceptors import InterceptorChain


class Notifier:
    """Emits notifications as ``publisher_id`` on ``topics`` of one cell.
    Built by :meth:`rpccore.RPC.notifier`; thread-safe.

    Each priority has a method ``(ctx, event_type, payload)``: ``ctx`` is a
    dict or has ``to_dict()``, ``event_type`` a string such as
    ``"compute.instance.create.end"``, ``payload`` any JSON value. Every pool
    of listeners on each of the topics receives one copy.

    Each method returns once the driver has the notification (with
    ``confirm=True``, once the backend has taken responsibility for it, as
    for a confirmed cast) and raises:

    - :class:`~rpccore.InvalidMessage` (before sending): ``event_type`` is
      not a non-empty string, ``ctx`` or ``payload`` cannot be sent as JSON,
      or the envelope is over the cell's ``max_message_size``;
    - :class:`~rpccore.TransportError`: the backend is unreachable after the
      driver's retries (topics before the failing one were sent);
    - :class:`~rpccore.ConfigError`: the cell's driver does not carry
      notifications.
    """

    def __init__(self, cell: Cell, publisher_id: str, topics: Iterable[str] | str,
                 interceptors: InterceptorChain | None = None) -> None:
        if type(publisher_id) is not str or not publisher_id:
            raise InvalidMessage(f"publisher_id is a non-empty string, not {publisher_id!r}")
        self.cell = cell
        self.publisher_id = publisher_id
        self.topics = check_topics(topics)
        self._sent = cell.stats.counter("notifications_sent")
        #: the RPC's interceptors (``before_send``/``after_send``, kind "notify")
        self._chain = interceptors
        self._dest = Destination(self.topics[0], None, cell.name, True)

    def __repr__(self) -> str:
        return (f"<Notifier {self.publisher_id!r} topics={list(self.topics)} "
                f"cell={self.cell.name!r}>")

    def audit(self, ctx: Context, event_type: str, payload: Any, *,
              confirm: bool = False) -> None:
        """Emit at priority ``audit``."""
        self._notify("audit", ctx, event_type, payload, confirm)

    def debug(self, ctx: Context, event_type: str, payload: Any, *,
              confirm: bool = False) -> None:
        """Emit at priority ``debug``."""
        self._notify("debug", ctx, event_type, payload, confirm)

    def info(self, ctx: Context, event_type: str, payload: Any, *,
             confirm: bool = False) -> None:
        """Emit at priority ``info``."""
        self._notify("info", ctx, event_type, payload, confirm)

    def warn(self, ctx: Context, event_type: str, payload: Any, *,
             confirm: bool = False) -> None:
        """Emit at priority ``warn``."""
        self._notify("warn", ctx, event_type, payload, confirm)

    def error(self, ctx: Context, event_type: str, payload: Any, *,
              confirm: bool = False) -> None:
        """Emit at priority ``error``."""
        self._notify("error", ctx, event_type, payload, confirm)

    def critical(self, ctx: Context, event_type: str, payload: Any, *,
                 confirm: bool = False) -> None:
        """Emit at priority ``critical``."""
        self._notify("critical", ctx, event_type, payload, confirm)

    def sample(self, ctx: Context, event_type: str, payload: Any, *,
               confirm: bool = False) -> None:
        """Emit at priority ``sample`` (metering samples)."""
        self._notify("sample", ctx, event_type, payload, confirm)

    def _notify(self, priority: str, ctx: Context, event_type: str, payload: Any,
                confirm: bool) -> None:
        cell = self.cell
        env = notification_envelope(self.publisher_id, priority, context_dict(ctx),
                                    event_type, payload)
        sending = None if self._chain is None else self._chain.start_send(
            "notify", cell, self._dest, env, event_type)
        try:
            self._send(env, confirm)
        except RPCError as exc:
            if sending is not None:
                sending.finish(exc)
            raise
        if sending is not None:
            sending.finish()

    def _send(self, env: dict[str, Any], confirm: bool) -> None:
        cell = self.cell
        body = envelope.encode(env, max_size=cell.max_message_size, key=cell.secret_key)
        driver = cell.driver()
        deadline = time.monotonic() + cell.rpc_response_timeout
        for topic in self.topics:
            try:
                driver.notify(topic, body, confirm=confirm, deadline=deadline)
            except TransportError:
                cell.stats.incr("failed")
                raise
            next(self._sent)
