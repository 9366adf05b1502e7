"""The test helpers rpccore ships for applications: the ``rpc_factory``
fixture of its pytest plugin, single-cell RPC objects and plugins injected
without a distribution."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import rpccore
from rpccore import RPC, Destination, Driver, Incoming, Subscription
from rpccore.drivers.memory import MemoryDriver
from rpccore.testing import RPCFactory, plugin_installed, single_cell_rpc


class Calculator:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def test_rpc_factory_fixture_gives_a_private_cell_and_closes_it(
        rpc_factory: RPCFactory) -> None:
    rpc = rpc_factory()
    other = rpc_factory()
    server = rpc.serve("calc", [Calculator()]).start()
    assert rpc.call({}, "calc", {"method": "add", "args": {"a": 1, "b": 2}}, timeout=5) == 3
    # a second object of the factory has an exchange of its own
    with pytest.raises(rpccore.Undeliverable):
        other.call({}, "calc", {"method": "add", "args": {"a": 1, "b": 2}}, timeout=5)
    rpc_factory.close()
    assert not server.running
    with pytest.raises(rpccore.RPCError):
        rpc.cell()


def test_single_cell_rpc_names_the_cell_and_applies_options() -> None:
    with single_cell_rpc("memory:///helpers-named", cell="edge",
                         rpc_response_timeout=3) as rpc:
        assert rpc.cell_names == ["edge"]
        assert rpc.default_cell == "edge"
        assert rpc.cell().options.rpc_response_timeout == 3
        with single_cell_rpc("memory:///helpers-named") as peer:
            rpc.serve("calc", [Calculator()]).start()
            assert peer.call({}, "calc", {"method": "add", "args": {"a": 2, "b": 2}},
                             timeout=5) == 4


def test_factory_defaults_and_wrap() -> None:
    with RPCFactory(rpc_response_timeout=7) as factory:
        made = factory()
        assert made.cell().options.rpc_response_timeout == 7
        wrapped = factory.wrap(RPC())
    with pytest.raises(rpccore.RPCError):
        made.cell()
    with pytest.raises(rpccore.RPCError):
        wrapped.cell()


class CountingDriver(MemoryDriver):
    """The memory driver under another name, counting what it sends."""

    sent: list[Destination] = []

    def send(self, dest: Destination, body: bytes, **kwargs: Any) -> None:
        type(self).sent.append(dest)
        super().send(dest, body, **kwargs)

    def subscribe(self, dest: Destination,
                  on_message: Callable[[Incoming], None]) -> Subscription:
        return super().subscribe(dest, on_message)


def test_a_driver_injected_without_a_distribution_serves_its_scheme() -> None:
    CountingDriver.sent = []
    with plugin_installed("counting", CountingDriver):
        with single_cell_rpc("counting:///inject-test") as rpc:
            assert isinstance(rpc.cell().driver(), Driver)
            rpc.serve("calc", [Calculator()]).start()
            assert rpc.call({}, "calc", {"method": "add", "args": {"a": 5, "b": 1}},
                            timeout=5) == 6
    assert [d.topic for d in CountingDriver.sent] == ["calc"]
    # withdrawn after the block: the scheme is unknown again
    with single_cell_rpc("counting:///inject-test") as rpc:
        with pytest.raises(rpccore.ConfigError, match="no driver named 'counting'"):
            rpc.cell().driver()


def test_injecting_twice_or_a_bad_kind_is_refused() -> None:
    with plugin_installed("twice", CountingDriver):
        with pytest.raises(ValueError):
            with plugin_installed("twice", CountingDriver):
                pass
    with pytest.raises(ValueError):
        with plugin_installed("x", CountingDriver, kind="serializer"):
            pass
