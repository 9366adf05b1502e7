"""Test helpers that applications and plugin authors use.

- :func:`memory_rpc`: an ``RPC`` on a private in-memory cell, in one line;
  :func:`single_cell_rpc`: the same for any transport URL, and
  :class:`RPCFactory`, which also closes what it made (the pytest plugin's
  ``rpc_factory`` fixture: :mod:`rpccore.testing.pytest_plugin`).
- :func:`plugin_installed`: a driver or matchmaker class used under a name
  as if a distribution declared it, without installing one.
- :func:`wait_until`: wait for an effect that has no event (a counter).
- :class:`NotificationCollector`: collects what an application notified
  (and :class:`NotificationRecorder`, the endpoint behind it).
- ``DriverConformance`` and ``MatchMakerConformance`` (import them from
  ``rpccore.testing``; they need pytest): behaviours written once that every
  driver and every matchmaker must show. Subclass them in your own tests;
  a driver that carries notifications mixes in ``NotificationConformance``
  or ``BrokerNotificationConformance`` as well.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rpccore import plugins
from rpccore.rpc import RPC
from rpccore.testing.factory import RPCFactory, single_cell_rpc
from rpccore.testing.notifications import NotificationCollector, NotificationRecorder

if TYPE_CHECKING:  # the real names for type checkers; loaded lazily at run time
    from rpccore.testing.driver_conformance import BrokerDriverConformance, DriverConformance
    from rpccore.testing.matchmaker_conformance import MatchMakerConformance
    from rpccore.testing.notification_conformance import (
        BrokerNotificationConformance,
        NotificationConformance,
    )


def memory_rpc(namespace: str | None = None, **cell_options: Any) -> RPC:
    """An ``RPC`` whose default cell is a private in-memory exchange.

    Two calls with the same ``namespace`` share one exchange, so a test can
    build a client and a server separately::

        with memory_rpc() as rpc:
            server = rpc.serve("compute", [Manager()]).start()
            assert rpc.call({}, "compute", {"method": "ping", "args": {}}) == "pong"
    """
    return single_cell_rpc(f"memory:///{namespace}" if namespace else "memory://",
                           **cell_options)


@contextlib.contextmanager
def plugin_installed(name: str, plugin: type, *, kind: str = "driver") -> Iterator[type]:
    """Within the block, ``plugin`` is the driver (or, ``kind="matchmaker"``,
    the matchmaker) called ``name``, as if an installed distribution declared
    it: ``transport_url = name://`` loads it. For testing a plugin that is
    not packaged yet::

        with plugin_installed("fake", FakeDriver):
            rpc = single_cell_rpc("fake://")

    :raises ValueError: ``kind`` is neither, or ``name`` is injected already.
    """
    namespaces = {"driver": plugins.DRIVER_NAMESPACE,
                  "matchmaker": plugins.MATCHMAKER_NAMESPACE}
    if kind not in namespaces:
        raise ValueError(f"kind must be 'driver' or 'matchmaker', not {kind!r}")
    plugins.inject(namespaces[kind], name, plugin)
    try:
        yield plugin
    finally:
        plugins.withdraw(namespaces[kind], name)


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
                                   "rpccore.testing.long_calls_conformance",
                                   "rpccore.testing.tracing_conformance",
                                   "rpccore.testing.matchmaker_conformance",
                                   "rpccore.testing.notification_conformance")


_SUITES = ("DriverConformance", "BrokerDriverConformance", "MatchMakerConformance",
           "NotificationConformance", "BrokerNotificationConformance")


def __getattr__(name: str) -> Any:
    # The suites import pytest: load them only when asked for.
    if name in _SUITES:
        _rewrite_asserts()
    if name in ("DriverConformance", "BrokerDriverConformance", "NotificationConformance",
                "BrokerNotificationConformance"):
        from rpccore.testing import driver_conformance
        return getattr(driver_conformance, name)
    if name == "MatchMakerConformance":
        from rpccore.testing.matchmaker_conformance import MatchMakerConformance
        return MatchMakerConformance
    raise AttributeError(name)


__all__ = ["memory_rpc", "single_cell_rpc", "RPCFactory", "plugin_installed",
           "wait_until", "NotificationCollector", "NotificationRecorder",
           "DriverConformance", "BrokerDriverConformance", "MatchMakerConformance",
           "NotificationConformance", "BrokerNotificationConformance"]
