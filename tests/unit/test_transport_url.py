from __future__ import annotations

import pytest

from rpccore.errors import ConfigError
from rpccore.transport_url import parse_transport_url


def test_several_hosts_vhost_and_query() -> None:
    url = parse_transport_url(
        "rabbit://u%40x:p%2Fw@h1:5672,u2:pw2@[::1]:5673/v%2Fh?ssl=true&heartbeat=10")
    assert url.scheme == "rabbit"
    assert [(h.hostname, h.port, h.username, h.password) for h in url.hosts] == [
        ("h1", 5672, "u@x", "p/w"), ("::1", 5673, "u2", "pw2")]
    assert url.virtual_host == "v/h"
    assert url.query == {"ssl": "true", "heartbeat": "10"}


def test_no_hosts() -> None:
    for text in ("zmq://", "memory://", "memory:///ns"):
        url = parse_transport_url(text)
        assert url.hosts == ()
    assert parse_transport_url("memory:///ns").virtual_host == "ns"


def test_passwords_never_shown() -> None:
    url = parse_transport_url("rabbit://user:topsecret@h:1,u:alsosecret@g/")
    for text in (str(url), repr(url), repr(url.hosts[0])):
        assert "secret" not in text


@pytest.mark.parametrize("text", ["", "rabbit", "rabbit:/h", "://h", "rabbit://h:notaport/",
                                  "rabbit://h:0/", "rabbit://h:70000", "rabbit://,h/",
                                  "rabbit://[::1/"])
def test_malformed_urls(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_transport_url(text)


def test_error_masks_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_transport_url("rabbit://user:topsecret@h:bad/")
    assert "topsecret" not in str(info.value)


def test_hosts_parse_as_every_driver_parses_them() -> None:
    # one parser (rpccore.driverkit.hosts) for URLs, destinations and matchmakers
    url = parse_transport_url("zmq://fd00::5,[fd00::6]:7,h:8,g/")
    assert [(h.hostname, h.port) for h in url.hosts] == [
        ("fd00::5", None), ("fd00::6", 7), ("h", 8), ("g", None)]
    assert str(url) == "zmq://[fd00::5],[fd00::6]:7,h:8,g/"
