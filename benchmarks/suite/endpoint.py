"""The benchmark server's endpoint and the counter casts are timed with."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any


class Counter:
    """Counts messages; :meth:`wait_for` blocks until a count is reached."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def hit(self) -> None:
        with self.cond:
            self.count += 1
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 120.0) -> int:
        with self.cond:
            if not self.cond.wait_for(lambda: self.count >= n, timeout=timeout):
                raise TimeoutError(f"only {self.count} of {n} messages arrived")
            return self.count


class Endpoint:
    """The benchmark server's methods."""

    def __init__(self, counter: Counter | None = None) -> None:
        self.counter = counter or Counter()

    def work(self, ctx: dict[str, Any], i: int, payload: str) -> int:
        return i

    def note(self, ctx: dict[str, Any], i: int, payload: str) -> None:
        self.counter.hit()

    def items(self, ctx: dict[str, Any], n: int, payload: str) -> Iterator[str]:
        """A streamed reply of ``n`` items of ``payload`` (rpc.stream)."""
        for _ in range(n):
            yield payload

    def wait_count(self, ctx: dict[str, Any], n: int) -> int:
        """For a client in another process: block until ``n`` casts have arrived."""
        return self.counter.wait_for(n, timeout=60)
