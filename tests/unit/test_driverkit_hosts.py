"""rpccore.driverkit.hosts: one parser of host strings for every driver."""

from __future__ import annotations

import pytest

from rpccore.driverkit import BadAddress, HostPort, parse_host_port


@pytest.mark.parametrize("text,expected", [
    ("compute-7.example.org", HostPort("compute-7.example.org", None)),
    ("10.0.0.5:9600", HostPort("10.0.0.5", 9600)),
    ("[fd00::5]:9600", HostPort("fd00::5", 9600)),
    ("[fd00::5]", HostPort("fd00::5", None)),
    ("fd00::5", HostPort("fd00::5", None)),
    ("fd00::5:9600", HostPort("fd00::5:9600", None)),   # bare IPv6 never has a port
    ("  h:1  ", HostPort("h", 1)),
    ("h:", HostPort("h", None)),
    ("h:65535", HostPort("h", 65535)),
])
def test_accepted_forms(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected


def test_default_port() -> None:
    assert parse_host_port("h", 9501) == HostPort("h", 9501)
    assert parse_host_port("h:7", 9501) == HostPort("h", 7)
    assert parse_host_port("[::1]", 9501) == HostPort("::1", 9501)


@pytest.mark.parametrize("text", ["", "  ", ":5", "[]:5", "[::1", "[::1]x", "[::1]5",
                                  "h:0", "h:65536", "h:x", "h:-1", "h:\u0665", "h:1.5"])
def test_refused(text: str) -> None:
    with pytest.raises(BadAddress) as info:
        parse_host_port(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("text", ["h", "h:5", "[::1]:5", "::1", "[fd00::5]"])
def test_str_parses_back(text: str) -> None:
    parsed = parse_host_port(text)
    assert parse_host_port(str(parsed)) == parsed


def test_str_brackets_ipv6() -> None:
    assert str(HostPort("::1", 5)) == "[::1]:5"
    assert str(HostPort("::1", None)) == "[::1]"
    assert str(HostPort("h", None)) == "h"
