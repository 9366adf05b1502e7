"""Load for fault tests of the rabbit driver: confirmed casts from several
threads to a server, and a caller calling in a loop, with everything each
of them saw and when (to count losses and duplicates, and to measure how
soon work resumed after a fault)."""

from __future__ import annotations

import threading
import time
from typing import Any

from rpccore import RPC
from rpccore.errors import RPCError


class Sink:
    """An endpoint remembering every value cast to it, and when each came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: list[str] = []
        self.times: list[float] = []
        self.arrived = threading.Condition(self.lock)

    def note(self, ctx: dict[str, Any], value: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.values.append(value)
            self.times.append(now)
            self.arrived.notify_all()

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def slow(self, ctx: dict[str, Any], seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    def first_after(self, moment: float) -> float | None:
        with self.lock:
            return next((t for t in self.times if t > moment), None)

    def wait_for(self, wanted: set[str], timeout: float) -> set[str]:
        """Wait until every value in ``wanted`` arrived; the missing ones."""
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                missing = wanted - set(self.values)
                left = end - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.arrived.wait(min(left, 0.5))

    def longest_gap(self, since: float) -> float:
        """The longest time without a delivery from ``since`` on (s)."""
        with self.lock:
            times = [since] + [t for t in self.times if t > since]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def duplicates(self) -> int:
        with self.lock:
            return len(self.values) - len(set(self.values))


class Casts:
    """``total`` confirmed casts of unique values from ``threads`` threads."""

    def __init__(self, client: RPC, topic: str, total: int = 5000, threads: int = 4) -> None:
        self.client = client
        self.topic = topic
        self.per_thread = total // threads
        self.lock = threading.Lock()
        self.confirmed: set[str] = set()
        self.failed: list[BaseException] = []
        self.threads = [threading.Thread(target=self._send, args=(k,), daemon=True)
                        for k in range(threads)]

    def start(self) -> Casts:
        for thread in self.threads:
            thread.start()
        return self

    def _send(self, sender: int) -> None:
        for i in range(self.per_thread):
            value = f"{sender}-{i}"
            try:
                self.client.cast({}, self.topic, {"method": "note", "args": {"value": value}},
                                 confirm=True)
            except RPCError as exc:
                with self.lock:
                    self.failed.append(exc)
                continue
            with self.lock:
                self.confirmed.add(value)

    def count(self) -> int:
        with self.lock:
            return len(self.confirmed)

    def join(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, end - time.monotonic()))
        return not any(thread.is_alive() for thread in self.threads)


class Caller:
    """Calls ``add`` in a loop with ``timeout``; records (start, end, ok) of each."""

    def __init__(self, rpc: RPC, topic: str, timeout: float = 1.0) -> None:
        self.rpc = rpc
        self.topic = topic
        self.timeout = timeout
        self.calls: list[tuple[float, float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Caller:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                ok = self.rpc.call({}, self.topic, {"method": "add", "args": {"a": 1, "b": 2}},
                                   timeout=self.timeout) == 3
            except RPCError:
                ok = False
            self.calls.append((start, time.monotonic(), ok))
            if not ok:
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)

    def late(self) -> list[tuple[float, float, bool]]:
        """Calls that ended more than 0.5 s after their deadline."""
        return [c for c in self.calls if c[1] - c[0] > self.timeout + 0.5]

    def longest_gap(self, since: float) -> float:
        """The longest time without a successful call ending, from ``since`` on."""
        ends = [since] + [end for start, end, ok in self.calls if ok and end > since]
        return max((b - a for a, b in zip(ends, ends[1:], strict=False)), default=0.0)

    def first_success_after(self, moment: float) -> float | None:
        return next((end for start, end, ok in self.calls if ok and start > moment), None)
