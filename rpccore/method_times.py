"""Running averages of how long named things take: each endpoint method's
runs, for servers on drivers that can lend their I/O thread to a request
expected to be quick (see :meth:`rpccore.driver.Incoming.release_thread`);
also a driver's own timings (the zmq driver's round trips per host)."""

from __future__ import annotations

from collections.abc import Callable

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
        #: ``expected(method)``: seconds a run of ``method`` is expected to
        #: take; ``None`` before its first run has been recorded. (The
        #: table's own ``get``: asked once per request, it costs no Python
        #: call.)
        self.expected: Callable[[str], float | None] = self._seconds.get

    def record(self, method: str, seconds: float) -> None:
        """Add a run of ``method`` that took ``seconds``.

        Takes no lock: two runs recorded at once may lose one of them, which
        an average can afford (each dict operation is atomic, and the table
        stays within :data:`LIMIT` give or take a thread or two)."""
        table = self._seconds
        old = table.get(method)
        if old is None:
            if len(table) < LIMIT:
                table[method] = seconds
        else:
            table[method] = old + (seconds - old) * WEIGHT
