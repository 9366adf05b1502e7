"""Every plugin loaded through stevedore, and several cells with different
drivers in one process (real RabbitMQ, AMQP 1.0 on RabbitMQ, ZeroMQ with
Redis registrations, memory)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from oslo_config import cfg

import rpccore
from rpccore import plugins
from rpccore_zmq.testing import free_port

SHIPPED = {
    plugins.DRIVER_NAMESPACE: {"memory", "rabbit", "qpid", "zmq"},
    plugins.MATCHMAKER_NAMESPACE: {"static", "ring", "redis"},
}


def test_every_shipped_plugin_loads_through_stevedore() -> None:
    for name in SHIPPED[plugins.DRIVER_NAMESPACE]:
        assert issubclass(plugins.load_driver(name), rpccore.Driver)
    for name in SHIPPED[plugins.MATCHMAKER_NAMESPACE]:
        assert issubclass(plugins.load_matchmaker(name), rpccore.MatchMaker)
    listed = {(p.namespace, p.name): p for p in plugins.list_plugins()}
    for namespace, names in SHIPPED.items():
        for name in names:
            info = listed[(namespace, name)]
            assert info.error is None and info.distribution.startswith("rpccore")


def test_sample_config_has_every_plugins_options() -> None:
    out = subprocess.run([sys.executable, "-m", "oslo_config.generator", "--namespace",
                          "rpccore"], capture_output=True, text=True, check=True).stdout
    for option in ("transport_url", "amqp_durable_queues", "zmq_port", "matchmaker",
                   "static_hosts", "ringfile", "matchmaker_url", "matchmaker_ttl"):
        assert f"#{option} =" in out, option


class Where:
    def __init__(self, cell: str) -> None:
        self.cell = cell

    def where(self, ctx: dict[str, Any]) -> str:
        return self.cell


@pytest.fixture
def four_cells() -> Any:
    suffix = os.urandom(4).hex()
    conf = cfg.ConfigOpts()
    rpc = rpccore.RPC(conf)
    rpc.remove_cell(rpc.default_cell)
    rpc.add_cell("mem", f"memory:///cells-{suffix}")
    rpc.add_cell("rabbit", "rabbit://guest:guest@127.0.0.1:5672/",
                 control_exchange=f"cells-{suffix}")
    rpc.add_cell("amqp1", "qpid://guest:guest@127.0.0.1:5672/",
                 control_exchange=f"cells-{suffix}")
    rpc.add_cell(f"edge-{suffix}", "zmq://", zmq_port=free_port(),
                 zmq_bind_address="127.0.0.1", matchmaker="redis",
                 matchmaker_url="redis://127.0.0.1:6379/0")
    rpc.default_cell = "mem"
    yield rpc, ["mem", "rabbit", "amqp1", f"edge-{suffix}"]
    rpc.close()


def test_one_process_many_cells_same_topic_kept_apart(four_cells: Any) -> None:
    rpc, cells = four_cells
    for cell in cells:
        rpc.serve(rpc.make_destination("compute", cell=cell), [Where(cell)]).start()
    for cell in cells:
        dest = rpc.make_destination("compute", cell=cell)
        for _ in range(3):
            assert rpc.call({}, dest, {"method": "where", "args": {}}, timeout=10) == cell
    assert rpc.call({}, "compute", {"method": "where", "args": {}}, timeout=10) == "mem"
    stats = rpc.stats()
    assert all(stats[cell]["received"] == 3 + (cell == "mem") for cell in cells)
    # each cell's driver is loaded once and shared
    assert rpc.cell("rabbit").driver() is rpc.cell("rabbit").driver()


def test_cells_added_and_removed_while_running(four_cells: Any) -> None:
    rpc, cells = four_cells
    suffix = os.urandom(4).hex()
    rpc.add_cell("late", "rabbit://guest:guest@127.0.0.1:5672/",
                 control_exchange=f"late-{suffix}")
    server = rpc.serve(rpc.make_destination("svc", cell="late"), [Where("late")]).start()
    assert rpc.call({}, rpc.make_destination("svc", cell="late"),
                    {"method": "where", "args": {}}, timeout=10) == "late"
    rpc.remove_cell("late")
    assert not server.running
    with pytest.raises(rpccore.InvalidDestination):
        rpc.call({}, rpc.make_destination("svc", cell="late"), {"method": "where"})
