"""The qpid driver over TLS (amqps), against a private RabbitMQ node with a
TLS listener and a throw-away CA made here with the openssl command."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from private_rabbit import PrivateRabbit, free_port
from rpccore import RPC
from rpccore.errors import TransportError
from rpccore.testing import single_cell_rpc


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> None:
    """ca.pem signs server.pem (for 127.0.0.1 and localhost); other-ca.pem signs nothing."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=rpccore test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=another CA", "-keyout", "other-ca.key", "-out", "other-ca.pem", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem",
             cwd=folder)
    for name in ("server.key", "ca.key"):
        os.chmod(folder / name, 0o644)


class TlsRabbit(PrivateRabbit):
    """A private node that also listens for TLS on :attr:`tls_port`."""

    def _write_config(self) -> None:
        super()._write_config()
        self.tls_port = free_port()
        certs = self.base / "certs"
        certs.mkdir(exist_ok=True)
        make_certificates(certs)
        config = self.base / "rabbitmq.conf"
        config.write_text(config.read_text() + (
            f"listeners.ssl.default = {self.tls_port}\n"
            f"ssl_options.cacertfile = {certs / 'ca.pem'}\n"
            f"ssl_options.certfile = {certs / 'server.pem'}\n"
            f"ssl_options.keyfile = {certs / 'server.key'}\n"
            "ssl_options.verify = verify_none\n"
            "ssl_options.fail_if_no_peer_cert = false\n"))


@pytest.fixture(scope="module")
def node() -> Iterator[TlsRabbit]:
    with TlsRabbit() as rabbit:
        yield rabbit


def _rpc(node: TlsRabbit, namespace: str, **options: Any) -> RPC:
    return single_cell_rpc(f"qpid://guest:guest@127.0.0.1:{node.tls_port}/",
                           control_exchange=namespace, ssl=True, **options)


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def test_calls_over_tls_with_a_verified_certificate(node: TlsRabbit) -> None:
    namespace = f"tls-{os.urandom(4).hex()}"
    ca = str(node.base / "certs" / "ca.pem")
    server = _rpc(node, namespace, ssl_ca_file=ca)
    client = _rpc(node, namespace, ssl_ca_file=ca)
    try:
        server.serve("tls", [Adder()]).start()
        assert client.call({}, "tls", {"method": "add", "args": {"a": 20, "b": 22}},
                           timeout=10) == 42
    finally:
        client.close()
        server.close()


def test_a_certificate_from_an_unknown_ca_is_refused(node: TlsRabbit) -> None:
    rpc = _rpc(node, "tls-refused", ssl_ca_file=str(node.base / "certs" / "other-ca.pem"))
    try:
        with pytest.raises(TransportError) as info:
            rpc.cast({}, "tls", {"method": "add", "args": {"a": 1, "b": 1}})
        assert "certificate" in str(info.value).lower(), info.value
    finally:
        rpc.close()


def test_query_parameters_select_tls(node: TlsRabbit) -> None:
    ca = node.base / "certs" / "ca.pem"
    rpc = single_cell_rpc(f"qpid://guest:guest@localhost:{node.tls_port}/?ssl=true&ssl_ca_file={ca}")
    try:
        rpc.cell().driver().connect(10)
    finally:
        rpc.close()
