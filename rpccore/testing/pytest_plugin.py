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
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpccore.testing.factory import RPCFactory


@pytest.fixture
def rpc_factory() -> Iterator[RPCFactory]:
    """Makes single-cell ``RPC`` objects for a URL; closes them after the test."""
    factory = RPCFactory()
    try:
        yield factory
    finally:
        factory.close()
