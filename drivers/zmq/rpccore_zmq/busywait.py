"""Busy-waiting for a quick reply (option ``zmq_busy_wait_us``, off by default).

A call's thread normally sleeps in the socket until the reply comes. On a
virtual machine whose idle CPUs halt, waking that thread costs more than the
sleep saves when the reply is due within a hundred microseconds or so: the
wake-up goes through the hypervisor, and the thread comes back to caches
another process has filled (measured on the project's 2-core VM: sequential
loopback calls 4,000-4,500/s sleeping, 6,700/s polling). Polling instead
keeps the CPU busy for as long as the reply takes, so it is only done

- when it is asked for (``zmq_busy_wait_us`` > 0), for at most that long;
- when the host's recent round trips were shorter than twice that (a
  running average; round trips measured while sleeping include the wake-up
  that polling saves, hence twice), so slow methods and distant hosts cost
  nothing extra;
- when no other call of the cell is in flight in this process: threads that
  poll side by side would take the CPU and the GIL from each other.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from rpccore.method_times import MethodTimes
from rpccore_zmq.frames import input_waiting


class BusyWait:
    """When, and for how long, a call polls for its reply.

    :param limit: seconds a call polls at most (``zmq_busy_wait_us``).
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        #: recent round trips by endpoint (a running average per name, with
        #: a bounded table: the core's table of method run times serves)
        self._round_trips = MethodTimes()
        self._lock = threading.Lock()
        self._calling = 0

    def enter(self) -> bool:
        """A call starts; True when it is the only one in flight."""
        with self._lock:
            self._calling += 1
            return self._calling == 1

    def leave(self) -> None:
        """The call that :meth:`enter` counted is over."""
        with self._lock:
            self._calling -= 1

    def budget(self, endpoint: str) -> float:
        """Seconds to poll for a reply from ``endpoint``: :attr:`limit` when
        its recent round trips were shorter than twice that, else (or when
        none is known yet) 0."""
        recent = self._round_trips.expected(endpoint)
        if recent is None or recent >= 2.0 * self.limit:
            return 0.0
        return self.limit

    def record(self, endpoint: str, seconds: float) -> None:
        """A call to ``endpoint`` was answered ``seconds`` after it was sent.
        (Counted as at most four times :attr:`limit`, so that one slow reply
        does not stop the polling for long.)"""
        self._round_trips.record(endpoint, min(seconds, 4.0 * self.limit))

    @staticmethod
    def poll(sock: zmq.Socket[Any], seconds: float) -> bool:
        """Poll ``sock`` for input for up to ``seconds`` (the GIL is free
        during each poll); True when input came."""
        end = time.perf_counter() + seconds
        while not input_waiting(sock):
            if time.perf_counter() >= end:
                return False
        return True
