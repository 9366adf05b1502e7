"""The rabbit driver over TLS, against a private RabbitMQ node with a
throw-away CA (tests/private_rabbit.py, PrivateRabbit(tls=True))."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from private_rabbit import PrivateRabbit
from rpccore import RPC
from rpccore.errors import TransportError
from rpccore.testing import single_cell_rpc


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbit]:
    with PrivateRabbit(tls=True) as rabbit:
        yield rabbit


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def _rpc(url: str, **options: Any) -> RPC:
    return single_cell_rpc(url, control_exchange="tls", **options)


def test_calls_over_tls_with_the_ca_from_the_url(node: PrivateRabbit) -> None:
    # options in the URL query, as operators may write them
    url = f"rabbit://guest:guest@localhost:{node.ssl_port}/?ssl=true&ssl_ca_file={node.ca_file}"
    server, client = _rpc(url), _rpc(url)
    try:
        server.serve(server.make_destination("tls.topic"), [Adder()]).start()
        assert client.call({}, "tls.topic", {"method": "add", "args": {"a": 2, "b": 3}},
                           timeout=10) == 5
        client.cast({}, "tls.topic", {"method": "add", "args": {"a": 1, "b": 1}}, confirm=True)
    finally:
        client.close()
        server.close()


def test_an_unknown_ca_is_refused_with_a_clear_error(node: PrivateRabbit) -> None:
    url = f"rabbit://guest:secret-pw@localhost:{node.ssl_port}/"
    client = _rpc(url, ssl=True)   # system CAs: the test CA is not among them
    try:
        start = time.monotonic()
        with pytest.raises(TransportError) as info:
            client.cell().driver().connect(timeout=2)
        assert time.monotonic() - start < 3
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) or "certificate" in str(info.value)
        assert "secret-pw" not in str(info.value)
    finally:
        client.close()
