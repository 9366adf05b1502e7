"""Waits between connection attempts: exponential backoff with jitter.

A thousand servers that lose the same broker must not come back in the same
millisecond, so every wait is randomised ("equal jitter": half the backoff
value plus up to the other half at random), and the first attempt after a
lost connection waits a random 0 to ``interval`` seconds. A wait never
exceeds ``maximum``, which bounds how long after a broker is back a server
resumes.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """The waits of one connection's retry loop (one thread)."""

    def __init__(self, interval: float, factor: float, maximum: float,
                 rng: Callable[[], float] = random.random) -> None:
        self.interval = interval
        self.factor = factor
        self.maximum = maximum
        self._rng = rng
        self._value = 0.0

    def after_loss(self) -> float:
        """The wait before the first attempt after a lost connection."""
        self._value = 0.0
        return min(self.interval, self.maximum) * self._rng()

    def after_failure(self) -> float:
        """The wait before the next attempt after a failed one."""
        self._value = min(max(self._value * self.factor, self.interval), self.maximum)
        return self._value * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        """Connected: the next failure starts from ``interval`` again."""
        self._value = 0.0
