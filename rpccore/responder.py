"""The replies of one request: final reply, stream items, keepalives.

A request may be answered many times, from two threads (the worker running
the method and the keepalive thread). :class:`Responder` serialises them, as
:meth:`rpccore.driver.Incoming.reply` requires, and sends nothing after the
final reply.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.dispatcher import Failure, failure
from rpccore.errors import InvalidMessage, RPCError
from rpccore.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from rpccore.cellview import CellView
    from rpccore.driver import Incoming

LOG = logging.getLogger(__name__)
_RATELOG = RateLimitedLog(LOG)


class Responder:
    """Sends the replies of one request.

    :param origin: what every reply carries of the server (``from``: its own
        destination, for stream credit; ``host`` for gathered replies)
    """

    __slots__ = ("_cell", "_incoming", "_env", "_origin", "_lock", "finished")

    def __init__(self, cell: CellView, incoming: Incoming, env: dict[str, Any],
                 origin: dict[str, Any] | None = None) -> None:
        self._cell = cell
        self._incoming = incoming
        self._env = env
        self._origin = origin
        self._lock = threading.Lock()
        self.finished = False

    def _head(self) -> dict[str, Any]:
        env = self._env
        reply: dict[str, Any] = {"v": envelope.VERSION, "id": env["id"] + ".r",
                                 "kind": "reply", "re": env["id"]}
        deadline = env.get("deadline")
        if deadline is not None:  # no null in the envelope (see rpccore.envelope)
            reply["deadline"] = deadline
        if self._origin:
            reply.update(self._origin)
        return reply

    def _send(self, reply: dict[str, Any], final: bool) -> bool:
        cell = self._cell
        body = envelope.encode(reply, max_size=cell.max_message_size, key=cell.secret_key)
        with self._lock:
            if self.finished:
                return False
            if final:
                self.finished = True
            try:
                self._incoming.reply(body)
            except RPCError as exc:
                _RATELOG.warning("reply", "cell %s: could not reply to %s: %s",
                                 cell.name, self._env["method"], exc)
                return False
        return True

    def keepalive(self) -> None:
        reply = self._head()
        reply["part"] = "ka"
        self._send(reply, final=False)

    def item(self, seq: int, value: Any) -> Failure | None:
        """Send one stream item; a failure when it cannot be encoded."""
        reply = self._head()
        reply["part"] = "item"
        reply["seq"] = seq
        if value is not None:
            reply["result"] = value
        try:
            self._send(reply, final=False)
        except InvalidMessage as exc:
            return failure("rpccore.InvalidResult",
                           f"{self._env['method']}() yielded a value that cannot be sent: {exc}")
        return None

    def final(self, result: Any, fail: Failure | None, **extra: Any) -> bool:
        """Send the final reply (once); True when it went out."""
        reply = self._head()
        if extra:
            reply.update(extra)
        if fail is None:
            if result is not None:
                reply["result"] = result
        else:
            reply["failure"] = fail
        try:
            return self._send(reply, final=True)
        except InvalidMessage as exc:
            reply.pop("result", None)
            reply["failure"] = failure(
                "rpccore.InvalidResult",
                f"{self._env['method']}() returned a value that cannot be sent: {exc}")
            return self._send(reply, final=True)
