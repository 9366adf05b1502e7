"""Caller side of streamed replies: an iterator that returns credit as it reads."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.destination import Destination
from rpccore.errors import RemoteError, RPCError, Timeout
from rpccore.replies import ReplyQueue

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.interceptors import Sending

LOG = logging.getLogger(__name__)


#: what :meth:`StreamReading._take` returns for a keepalive: no item yet
MORE: Any = object()


class StreamReading:
    """What every reader of a streamed reply does, whatever waits for the
    envelopes: take each one in order, return credit as items are
    consumed, end (and tell the interceptors), cancel. :class:`StreamReader`
    waits on a thread; :mod:`rpccore.aio`'s reader waits on an event loop and
    sends credit from threads of its own (:meth:`_send_control`).
    """

    def __init__(self, cell: Cell, msg_id: str, queue: ReplyQueue, timeout: float,
                 window: int, new_id: Callable[[], str], what: str) -> None:
        self._cell = cell
        self._id = msg_id
        self._queue = queue
        self._timeout = timeout
        self._window = window
        self._new_id = new_id
        self._what = what
        self._unreturned = 0  # items consumed since credit was last returned
        self._server: Destination | None = None
        self._done = False
        self.items = 0
        #: the interceptors watching this stream, finished when it ends
        self.sending: Sending | None = None

    def _take(self, env: dict[str, Any]) -> Any:
        """The item one reply envelope of the stream carries; :data:`MORE`
        for a keepalive.

        :raises StopIteration: the stream ended.
        :raises RemoteError: the generator raised.
        """
        part = env.get("part")
        if part == "ka":
            return MORE
        origin = env.get("from")
        if self._server is None and isinstance(origin, dict):
            self._server = Destination(str(origin.get("topic")), str(origin.get("host")),
                                       self._cell.name)
        if part == "item":
            self.items += 1
            self._unreturned += 1
            if self._unreturned * 2 >= self._window:
                self._control(credit=self._unreturned)
                self._unreturned = 0
            return env.get("result")
        fail = env.get("failure")
        if fail is not None:
            self._cell.stats.incr("remote_errors")
            error = RemoteError(fail["type"], fail["message"], fail.get("traceback") or "")
            self._finish(error)
            raise error
        self._finish()
        raise StopIteration

    def _failed(self, error: RPCError) -> None:
        """The cell failed (closed) while we waited: the stream ends with it."""
        self._finish(error)
        self._control(cancel=True)  # best effort: the server's generator may go

    def _timed_out(self) -> Timeout:
        """No item within the per-item timeout: the stream ends with this."""
        self._cell.stats.incr("timed_out")
        timeout = Timeout(
            f"stream from {self._what} in cell {self._cell.name} "
            f"({self._cell.driver_name} driver): no item within {self._timeout:g} s "
            f"after {self.items} items" + ("" if self._server is None else
                                           f" from server {self._server.host}"))
        self._finish(timeout)
        # nobody reads on: let the server's generator go now rather than
        # after its idle limit
        self._control(cancel=True)
        return timeout

    def _control(self, **what: Any) -> None:
        """Send credit or a cancel to the server streaming to us."""
        if self._server is None:
            return
        cell = self._cell
        env: dict[str, Any] = {"v": envelope.VERSION, "id": self._new_id(), "kind": "control",
                               "re": self._id, "deadline": time.time() + 60, **what}
        try:
            body = envelope.encode(env, max_size=cell.max_message_size, key=cell.secret_key)
        except RPCError as exc:
            LOG.warning("stream %s: could not encode %s: %s", self._id, sorted(what), exc)
            return
        self._send_control(self._server, body, what)

    def _send_control(self, server: Destination, body: bytes, what: dict[str, Any]) -> None:
        """Hand a control envelope to the driver (here, on this thread)."""
        try:
            self._cell.driver().send(server, body, deadline=time.monotonic() + 5)
        except RPCError as exc:
            LOG.warning("stream %s: could not send %s to %s: %s", self._id, sorted(what),
                        server, exc)

    def _finish(self, error: BaseException | None = None) -> None:
        if not self._done:
            self._done = True
            self._cell.pending_calls.discard(self._id)
            if self.sending is not None:
                self.sending.finish(error)

    def close(self) -> None:
        """Stop reading; the server's generator is closed (the cancel is
        sent through :meth:`_control`). Idempotent."""
        if not self._done:
            self._finish()
            self._control(cancel=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit the cell may be gone
            pass


class StreamReader(StreamReading, Iterator[Any]):
    """The items of a streamed reply, in order (what ``rpc.stream`` returns).

    Each ``next()`` waits at most ``timeout`` seconds for the next item.
    Closing it early (``close()``, ``break`` out of a ``with`` block, or
    garbage collection) tells the server to stop the generator.

    :raises Timeout: no item (nor the end) within ``timeout``; the stream
        is then cancelled, as by :meth:`close`.
    :raises RemoteError: the generator raised, after the items before it.
    """

    def __iter__(self) -> StreamReader:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        while True:
            try:
                env = self._queue.get(self._timeout)
            except RPCError as exc:
                self._failed(exc)
                raise
            if env is None:
                raise self._timed_out()
            item = self._take(env)
            if item is not MORE:
                return item

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
