"""Options and URL handling of the rabbit driver (no network: nothing connects
before first use)."""

from __future__ import annotations

import ssl

import pytest
from oslo_config import cfg

from rpccore import RPC
from rpccore.errors import ConfigError
from rpccore_rabbit.driver import RabbitDriver


def _driver(url: str, **options: object) -> RabbitDriver:
    rpc = RPC(cfg.ConfigOpts())
    rpc.add_cell("r", url, **options)
    driver = rpc.cell("r").driver()
    assert isinstance(driver, RabbitDriver)
    return driver


def test_hosts_vhost_and_defaults() -> None:
    driver = _driver("rabbit://u:secret@h1:5673,u2:pw@h2/vh")
    params = driver.params
    assert [(h.hostname, params.port_of(h)) for h in params.hosts] == [("h1", 5673), ("h2", 5672)]
    assert params.virtual_host == "vh"
    assert params.ssl_options is None
    assert params.durable is False
    assert "secret" not in params.url_for_logs and "pw" not in params.url_for_logs
    assert _driver("rabbit://h/").params.virtual_host == "/"


def test_url_query_overrides_options() -> None:
    driver = _driver("rabbit://h/?ssl=true&heartbeat_interval=5&amqp_durable_queues=true"
                     "&ssl_ca_file=/ca.pem&reconnect_interval_max=0.5",
                     heartbeat_interval=30)
    params = driver.params
    assert params.ssl_options == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": "/ca.pem",
                                  "server_hostname": None}
    assert params.port_of(params.hosts[0]) == 5671
    # add_cell keywords win over the URL query
    assert params.heartbeat == 30
    assert params.durable is True
    assert params.reconnect_interval_max == 0.5


def test_key_without_certificate_is_refused() -> None:
    with pytest.raises(ConfigError):
        _driver("rabbit://h/?ssl=true&ssl_key_file=/k.pem")


def test_options_are_listed_for_the_sample_config() -> None:
    names = {opt.name for opt in RabbitDriver.options()}
    assert {"ssl", "ssl_ca_file", "ssl_cert_file", "ssl_key_file", "heartbeat_interval",
            "reconnect_interval", "reconnect_backoff", "reconnect_interval_max",
            "amqp_durable_queues", "connect_timeout"} <= names


def test_queue_layout_options() -> None:
    params = _driver("rabbit://h/").params
    assert (params.queue_type, params.delivery_limit, params.queue_expiry) == ("classic", 20, 3600)
    params = _driver("rabbit://h/?rabbit_queue_type=quorum&rabbit_quorum_delivery_limit=5"
                     "&rabbit_queue_expiry=0").params
    assert (params.queue_type, params.delivery_limit, params.queue_expiry) == ("quorum", 5, 0)
    with pytest.raises(ConfigError):
        _driver("rabbit://h/?rabbit_queue_type=stream")
