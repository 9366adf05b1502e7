"""How long each endpoint method has been taking, for servers on drivers that
can lend their I/O thread to a request expected to be quick (see
:meth:`rpccore.driver.Incoming.release_thread`)."""

from __future__ import annotations

import threading

#: Weight of the latest run in a method's running average.
WEIGHT = 0.25
#: Methods remembered (names come from the network: the table must not grow
#: without bound).
LIMIT = 10_000


class MethodTimes:
    """A running average of the wall-clock seconds of each method's runs.

    A method that blocks once moves its average up at once (a quarter of the
    time it took), and takes a few quick runs to come back down.
    """

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def expected(self, method: str) -> float | None:
        """Seconds a run of ``method`` is expected to take; ``None`` before
        its first run has been recorded."""
        return self._seconds.get(method)

    def record(self, method: str, seconds: float) -> None:
        """Add a run of ``method`` that took ``seconds``."""
        with self._lock:
            old = self._seconds.get(method)
            if old is None:
                if len(self._seconds) >= LIMIT:
                    return
                self._seconds[method] = seconds
            else:
                self._seconds[method] = old + (seconds - old) * WEIGHT
