"""Test helpers that applications and plugin authors use.

- :func:`memory_rpc`: an ``RPC`` on a private in-memory cell, in one line.
- :func:`wait_until`: wait for an effect that has no event (a counter).
- ``DriverConformance`` and ``MatchMakerConformance`` (import them from
  ``rpccore.testing``; they need pytest): behaviours written once that every
  driver and every matchmaker must show. Subclass them in your own tests.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore.rpc import RPC

if TYPE_CHECKING:  # the real names for type checkers; loaded lazily at run time
    from rpccore.testing.driver_conformance import BrokerDriverConformance, DriverConformance
    from rpccore.testing.matchmaker_conformance import MatchMakerConformance


def memory_rpc(namespace: str | None = None, **cell_options: Any) -> RPC:
    """An ``RPC`` whose default cell is a private in-memory exchange.

    Two calls with the same ``namespace`` share one exchange, so a test can
    build a client and a server separately::

        with memory_rpc() as rpc:
            server = rpc.serve("compute", [Manager()]).start()
            assert rpc.call({}, "compute", {"method": "ping", "args": {}}) == "pong"
    """
    name = namespace or "test-" + os.urandom(6).hex()
    rpc = RPC(cfg.ConfigOpts())
    rpc.remove_cell(rpc.default_cell)
    rpc.add_cell(rpc.default_cell, f"memory:///{name}", **cell_options)
    return rpc


def wait_until(predicate: Callable[[], object], timeout: float = 10.0,
               interval: float = 0.02) -> bool:
    """For tests: True once ``predicate()`` is true, False after ``timeout``
    seconds (for effects that have no event to wait on, such as counters)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _rewrite_asserts() -> None:
    # Let pytest explain a failing kit assertion with its values, as it does
    # for the test modules themselves (it must hear of the modules before
    # they are imported).
    import pytest

    pytest.register_assert_rewrite("rpccore.testing.driver_conformance",
                                   "rpccore.testing.matchmaker_conformance")


def __getattr__(name: str) -> Any:
    # The suites import pytest: load them only when asked for.
    if name in ("DriverConformance", "BrokerDriverConformance", "MatchMakerConformance"):
        _rewrite_asserts()
    if name in ("DriverConformance", "BrokerDriverConformance"):
        from rpccore.testing import driver_conformance
        return getattr(driver_conformance, name)
    if name == "MatchMakerConformance":
        from rpccore.testing.matchmaker_conformance import MatchMakerConformance
        return MatchMakerConformance
    raise AttributeError(name)


__all__ = ["memory_rpc", "wait_until", "DriverConformance", "BrokerDriverConformance",
           "MatchMakerConformance"]
