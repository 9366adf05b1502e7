"""rpccore's pytest plugin, loaded by pytest wherever rpccore is installed
(entry point ``pytest11: rpccore``).

Fixtures:

- ``rpc_factory``: an :class:`~rpccore.testing.factory.RPCFactory`; every
  ``RPC`` it makes is closed when the test ends::

      def test_add(rpc_factory):
          rpc = rpc_factory()                       # private in-memory cell
          rpc.serve("calc", [Calculator()]).start()
          assert rpc.call({}, "calc", {"method": "add", "args": {"a": 1, "b": 2}}) == 3

      def test_on_rabbit(rpc_factory):
          rpc = rpc_factory("rabbit://guest:guest@127.0.0.1:5672/", control_exchange="t1")

- ``collect_notifications``: ``collect_notifications(rpc, topics=...)``
  starts a :class:`~rpccore.testing.NotificationCollector` (what the
  application notifies) and stops it when the test ends::

      def test_create_notifies(rpc_factory, collect_notifications):
          rpc = rpc_factory()
          notified = collect_notifications(rpc)
          create_instance(rpc)
          assert notified.wait_for(1)[0].event_type == "compute.instance.create.end"

Marker:

- ``timing``: the test measures how late the machine runs something (an
  event loop's lag, say), so it must run alone, not beside tests in other
  processes. This repository's tox runs the rest in parallel
  (``pytest -n 3 -m "not timing"``), then these one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rpccore.testing.factory import RPCFactory
from rpccore.testing.notifications import NotificationCollector


@pytest.fixture
def rpc_factory() -> Iterator[RPCFactory]:
    """Makes single-cell ``RPC`` objects for a URL; closes them after the test."""
    factory = RPCFactory()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def collect_notifications() -> Iterator[Callable[..., NotificationCollector]]:
    """Starts NotificationCollectors (``collect_notifications(rpc, topics=...,
    cell=...)``); stops them after the test."""
    started: list[NotificationCollector] = []

    def collect(rpc: Any, topics: Any = ("notifications",), **kwargs: Any
                ) -> NotificationCollector:
        collector = NotificationCollector(rpc, topics, **kwargs).start()
        started.append(collector)
        return collector

    try:
        yield collect
    finally:
        for collector in reversed(started):
            collector.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "timing: measures how late the machine runs something; run it alone "
        "(not beside tests in other processes)")
