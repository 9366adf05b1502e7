"""URL and option handling of the qpid driver (no network: nothing connects
before first use)."""

from __future__ import annotations

from pathlib import Path

import pytest
from oslo_config import cfg

from rpccore import RPC
from rpccore.cell import Cell
from rpccore.errors import ConfigError
from rpccore_qpid.brokers import broker_addresses, connect_options, ssl_domain
from rpccore_qpid.driver import QpidDriver


def _cell(url: str, **options: object) -> Cell:
    rpc = RPC(cfg.ConfigOpts())
    rpc.add_cell("q", url, **options)
    cell = rpc.cell("q")
    assert isinstance(cell.driver(), QpidDriver)  # registers the driver's options
    return cell


def test_hosts_ports_and_masked_credentials() -> None:
    cell = _cell("qpid://u:secret@h1:5673,u2:pw%2F2@[::1]/")
    brokers = broker_addresses(cell)
    assert [b.url for b in brokers] == ["amqp://h1:5673", "amqp://[::1]:5672"]
    assert [(b.user, b.password) for b in brokers] == [("u", "secret"), ("u2", "pw/2")]
    assert all("secret" not in b.shown and "pw" not in b.shown for b in brokers)
    assert cell.options.prefetch == 64 and cell.options.heartbeat_interval == 30


def test_query_parameters_turn_on_tls_and_change_the_default_port(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not really a certificate")
    cell = _cell(f"qpid://u:p@h/?ssl=true&ssl_ca_file={ca}&heartbeat_interval=5")
    assert [b.url for b in broker_addresses(cell)] == ["amqps://h:5671"]
    assert cell.options.heartbeat_interval == 5


def test_credentials_mean_plain_only() -> None:
    cell = _cell("qpid://user:pw@h/vh")
    options = connect_options(cell, broker_addresses(cell)[0], None)
    assert options["allowed_mechs"] == "PLAIN"
    assert (options["user"], options["password"]) == ("user", "pw")
    assert options["reconnect"] is False
    assert options["virtual_host"] == "vhost:vh"
    assert options["heartbeat"] == 30


def test_no_credentials_means_anonymous_and_heartbeat_zero_disables() -> None:
    cell = _cell("qpid://h/", heartbeat_interval=0)
    options = connect_options(cell, broker_addresses(cell)[0], None)
    assert options["allowed_mechs"] == "ANONYMOUS"
    assert "user" not in options and "heartbeat" not in options and "virtual_host" not in options


def test_missing_tls_files_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="ssl_ca_file"):
        ssl_domain(_cell("qpid://h/?ssl=true&ssl_ca_file=/no/such/ca.pem"))
    assert ssl_domain(_cell("qpid://h/")) is None


def test_a_url_without_hosts_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="names no host"):
        broker_addresses(_cell("qpid:///"))


def test_building_the_driver_does_not_connect() -> None:
    cell = _cell("qpid://u:p@192.0.2.1:1/")  # TEST-NET: nothing answers there
    driver = cell.driver()
    assert isinstance(driver, QpidDriver) and driver.detects_undeliverable
    driver.close()
    driver.close()
