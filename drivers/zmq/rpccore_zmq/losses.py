"""What the client reports when no host takes a message: the error a waiting
caller gets (:func:`failure`), and the host-directed casts lost per host
(:class:`LostCasts`), which make the next plain cast to that host raise."""

from __future__ import annotations

import threading

from rpccore.errors import TransportError, Undeliverable

from rpccore_zmq.peer import Outgoing


def failure(out: Outgoing) -> Exception:
    """The error for a message no host took: :class:`Undeliverable` when
    every host tried refused it (nobody consumes it), else
    :class:`TransportError`."""
    topic = out.topic.decode("utf-8", "replace")
    where = ", ".join(out.tried) or "no host"
    if out.tried and out.refusals == len(out.tried):
        return Undeliverable(f"nobody consumes topic {topic!r} on {where}")
    return TransportError(f"message to topic {topic!r} not delivered to {where}: "
                          f"{out.why or 'no receipt'}")


class LostCasts:
    """Host-directed casts given up, by host, until the next cast there asks."""

    def __init__(self) -> None:
        self._lost: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def record(self, host: str, error: Exception) -> None:
        """(Loop thread) one more cast to ``host`` was lost, because of ``error``."""
        with self._lock:
            count, _ = self._lost.get(host, (0, ""))
            self._lost[host] = (count + 1, str(error))

    def take(self, host: str) -> tuple[int, str] | None:
        """(Any thread) ``(count, why)`` of casts to ``host`` lost since the
        last time, or ``None``; resets the count."""
        if not self._lost:  # the common case, without the lock
            return None
        with self._lock:
            return self._lost.pop(host, None)
