"""Cells from configuration files, at run time, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

import rpccore
from rpccore.opts import list_opts


def conf_from(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "app.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], default_config_files=[])
    return conf


class Echo:
    def echo(self, ctx: dict[str, object], value: object) -> object:
        return value


def test_no_config_gives_a_memory_default_cell() -> None:
    with rpccore.RPC() as rpc:
        assert rpc.cell_names == ["default"]
        assert rpc.cell().driver_name == "memory"


def test_cells_from_files_and_query_overrides(tmp_path: Path) -> None:
    conf = conf_from(tmp_path, """
[rpccore]
default_cell = local
cells = local, edge

[cell:local]
transport_url = memory:///cfgtest-local
rpc_response_timeout = 7

[cell:edge]
transport_url = memory:///cfgtest-edge?rpc_response_timeout=3&max_message_size=4096
""")
    with rpccore.RPC(conf) as rpc:
        assert rpc.cell_names == ["local", "edge"]
        assert rpc.cell().name == "local"
        assert rpc.cell("local").options.rpc_response_timeout == 7
        edge = rpc.cell("edge")
        assert edge.options.rpc_response_timeout == 3
        assert edge.max_message_size == 4096
        rpc.serve(rpc.make_destination("t", cell="edge"), [Echo()]).start()
        assert rpc.call({}, rpc.make_destination("t", cell="edge"),
                        {"method": "echo", "args": {"value": 1}}) == 1
        # the same topic in the other cell is another destination
        with pytest.raises(rpccore.Undeliverable):
            rpc.call({}, "t", {"method": "echo", "args": {"value": 1}})
        with pytest.raises(rpccore.InvalidMessage):
            rpc.cast({}, rpc.make_destination("t", cell="edge"),
                     {"method": "echo", "args": {"value": "x" * 5000}})


def test_cell_sections_are_found_without_a_cells_list(tmp_path: Path) -> None:
    conf = conf_from(tmp_path, "[cell:only]\ntransport_url = memory:///cfgtest-only\n")
    with rpccore.RPC(conf) as rpc:
        assert rpc.cell_names == ["only"]
        assert rpc.cell().name == "only"


def test_add_and_remove_cells_at_run_time() -> None:
    with rpccore.RPC() as rpc:
        rpc.add_cell("extra", "memory:///cfgtest-extra", rpc_response_timeout=2)
        assert rpc.cell("extra").options.rpc_response_timeout == 2
        server = rpc.serve(rpc.make_destination("t", cell="extra"), [Echo()]).start()
        with pytest.raises(ValueError):
            rpc.add_cell("extra", "memory://")
        rpc.remove_cell("extra")
        assert not server.running
        with pytest.raises(rpccore.InvalidDestination):
            rpc.cast({}, rpc.make_destination("t", cell="extra"), {"method": "echo"})


def test_config_errors_name_what_to_do() -> None:
    with rpccore.RPC() as rpc:
        with pytest.raises(rpccore.ConfigError, match="malformed"):
            rpc.add_cell("bad", "not a url")
        rpc.add_cell("nodriver", "nosuchdriver://")
        with pytest.raises(rpccore.ConfigError, match="no driver named 'nosuchdriver'"):
            rpc.cast({}, rpc.make_destination("t", cell="nodriver"), {"method": "m"})
        with pytest.raises(rpccore.ConfigError, match="rpc_response_timeout"):
            rpc.add_cell("badopt", "memory://?rpc_response_timeout=soon")


def test_known_plugin_names_the_distribution_to_install() -> None:
    from rpccore import plugins
    with pytest.raises(rpccore.ConfigError, match="pip install rpccore-x"):
        plugins.KNOWN_DISTRIBUTIONS[(plugins.DRIVER_NAMESPACE, "xdriver")] = "rpccore-x"
        try:
            plugins.load_driver("xdriver")
        finally:
            del plugins.KNOWN_DISTRIBUTIONS[(plugins.DRIVER_NAMESPACE, "xdriver")]


def test_list_opts_covers_core_and_plugins() -> None:
    groups = dict(list_opts())
    names = {opt.name for opt in groups["cell:name"]}
    assert {"transport_url", "control_exchange", "rpc_response_timeout", "secret_key",
            "max_message_size"} <= names
    assert {opt.name for opt in groups["rpccore"]} == {"default_cell", "cells",
                                                         "notification_cell", "opentelemetry"}
    secret = {opt.name for opt in groups["cell:name"] if opt.secret}
    assert {"transport_url", "secret_key"} <= secret


def test_module_level_shortcuts() -> None:
    rpc = rpccore.init(None)
    try:
        server = rpccore.serve("shortcut", [Echo()]).start()
        assert rpccore.call({}, "shortcut", {"method": "echo", "args": {"value": 5}}) == 5
        rpccore.cast({}, rpccore.make_destination("shortcut"),
                     {"method": "echo", "args": {"value": 6}})
        server.stop()
        assert server.wait(5)
    finally:
        rpc.close()
