"""Server side of streamed replies: a generator run under the caller's credit.

A caller reading a stream (``rpc.stream``) sends its request with ``win``,
the items the server may send before hearing back. Each item costs one
credit; the caller returns credit (``control`` envelopes sent to the
server's own destination) as it consumes items, or cancels. The server pulls
the next item from the generator only while it holds credit, so a slow
reader keeps it at most a window ahead, and cancelling (or a caller that
never comes back) closes the generator, which runs its ``finally``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any

from rpccore.dispatcher import Failure, exception_type_name, failure
from rpccore.responder import Responder

LOG = logging.getLogger(__name__)

#: seconds a stream waits for credit before deciding its reader is gone
#: (at least this, or ten times the caller's per-item timeout)
MIN_IDLE_LIMIT = 60.0


class ServerStream:
    """One running stream: its credit and whether it was cancelled.

    :ivar on_cancel: called (on the thread that delivered the cancel) when
        the caller cancels; an async generator's stream (:mod:`rpccore.aio`)
        sets it to interrupt an item it is still awaiting.
    """

    __slots__ = ("_cond", "credit", "cancelled", "on_cancel")

    def __init__(self, window: int) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.credit = window
        self.cancelled = False
        self.on_cancel: Callable[[], None] | None = None

    def add_credit(self, n: int) -> None:
        with self._cond:
            self.credit += n
            self._cond.notify()

    def cancel(self) -> None:
        with self._cond:
            self.cancelled = True
            self._cond.notify()
        if self.on_cancel is not None:
            self.on_cancel()

    def wait_for_credit(self, limit: float) -> bool:
        """True when an item may be sent; False when cancelled or after
        ``limit`` seconds without credit."""
        end = time.monotonic() + limit
        with self._cond:
            while self.credit <= 0 and not self.cancelled:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            if self.cancelled:
                return False
            self.credit -= 1
            return True


class StreamRegistry:
    """The streams a cell's servers run now, by request id (controls for a
    stream may reach any server of the process on that destination)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, ServerStream] = {}

    def open(self, msg_id: str, window: int) -> ServerStream:
        stream = ServerStream(window)
        with self._lock:
            self._streams[msg_id] = stream
        return stream

    def close(self, msg_id: str) -> None:
        with self._lock:
            self._streams.pop(msg_id, None)

    def get(self, msg_id: str) -> ServerStream | None:
        """The running stream answering request ``msg_id``, if any."""
        return self._streams.get(msg_id)

    def control(self, env: dict[str, Any]) -> bool:
        """Apply a ``control`` envelope; False when no such stream runs."""
        stream = self._streams.get(env["re"])
        if stream is None:
            return False
        if env.get("cancel"):
            stream.cancel()
        credit = env.get("credit")
        if type(credit) is int and credit > 0:
            stream.add_credit(credit)
        return True


def stream_generator(registry: StreamRegistry, responder: Responder, env: dict[str, Any],
                     gen: Generator[Any, Any, Any]) -> tuple[int, Failure | None]:
    """Send ``gen``'s items as replies under credit; return how many went out
    and the failure that ended it (``None``: ran to its end or was cancelled)."""
    window = env["win"]
    per_item = env.get("st")
    limit = max(MIN_IDLE_LIMIT, 10 * per_item) if isinstance(per_item, (int, float)) \
        else MIN_IDLE_LIMIT
    stream = registry.open(env["id"], window if type(window) is int and window > 0 else 1)
    sent = 0
    try:
        while True:
            if not stream.wait_for_credit(limit):
                if stream.cancelled:
                    return sent, None
                LOG.warning("stream %s of %s: no credit from the caller for %g s; "
                            "closing it", env["id"], env["method"], limit)
                # a reader still there must not take the end for the whole stream
                return sent, failure("rpccore.Timeout",
                                     f"no credit from the caller for {limit:g} s; the "
                                     f"stream was closed after {sent} items")
            try:
                item = next(gen)
            except StopIteration:
                return sent, None
            except Exception as exc:
                return sent, failure(exception_type_name(exc), str(exc),
                                     traceback.format_exc())
            fail = responder.item(sent, item)
            if fail is not None:
                return sent, fail
            sent += 1
    finally:
        registry.close(env["id"])
        gen.close()  # runs the generator's finally (a no-op once it ended)


def collect(gen: Generator[Any, Any, Any]) -> tuple[Any, Failure | None]:
    """A generator method answered by a plain call: the list of its items."""
    try:
        return list(gen), None
    except Exception as exc:
        return None, failure(exception_type_name(exc), str(exc), traceback.format_exc())
