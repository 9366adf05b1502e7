"""Connecting the nats driver: user/password in the URL, NKEY seeds, tokens,
TLS, servers that are down or refuse the credentials; and secrets never
appear in logs or errors. Private nats-server processes, one per setting."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nkeys
import pytest

import rpccore
from private_nats import PrivateNatsServer, assert_served_without_jetstream, free_port
from private_nats import connect_refused as refused
from rpccore.cli.main import main
from rpccore.errors import TransportError
from rpccore.testing import single_cell_rpc

PASSWORD = "p@ss:w/rd-" + os.urandom(4).hex()
TOKEN = "token-" + os.urandom(8).hex()
SEED = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
NKEY = nkeys.from_seed(SEED.encode()).public_key.decode()
SECRETS = (PASSWORD, TOKEN, SEED)


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


@pytest.fixture(scope="module")
def users_server() -> Iterator[PrivateNatsServer]:
    extra = ('authorization { users: [ { user: "alice", password: "' + PASSWORD + '" }, '
             '{ nkey: "' + NKEY + '" } ] }')
    with PrivateNatsServer(extra) as server:
        yield server


@pytest.fixture(scope="module")
def token_server() -> Iterator[PrivateNatsServer]:
    with PrivateNatsServer('authorization { token: "' + TOKEN + '" }') as server:
        yield server


@pytest.fixture(scope="module")
def tls_server() -> Iterator[PrivateNatsServer]:
    with PrivateNatsServer("{tls}", tls=True) as server:
        yield server


def _rpc(url: str, **options: Any) -> rpccore.RPC:
    return single_cell_rpc(url, control_exchange=f"conn-{os.urandom(3).hex()}", **options)


def round_trip(url: str, **options: Any) -> None:
    rpc = _rpc(url, **options)
    try:
        rpc.serve(rpc.make_destination("conn.topic", host="h"), [Adder()]).start()
        assert rpc.call({}, "conn.topic", {"method": "add", "args": {"a": 2, "b": 3}},
                        timeout=10) == 5
        rpc.cast({}, "conn.topic", {"method": "add", "args": {"a": 2, "b": 3}}, confirm=True)
    finally:
        rpc.close()


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text


def test_user_and_password_in_the_url(users_server: PrivateNatsServer,
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = users_server.ports[0]
    quoted = PASSWORD.replace("@", "%40").replace(":", "%3A").replace("/", "%2F")
    round_trip(f"nats://alice:{quoted}@127.0.0.1:{port}")
    error = refused(f"nats://alice:wrong-{quoted}@127.0.0.1:{port}")
    assert "credentials" in error
    assert_no_secret([error] + [r.getMessage() for r in caplog.records])


def test_nkey_seed_option_and_file(users_server: PrivateNatsServer, tmp_path: Path,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"nats://127.0.0.1:{users_server.ports[0]}"
    round_trip(url, nats_nkey_seed=SEED)
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(SEED + "\n")
    round_trip(url, nats_nkey_seed_file=str(seed_file))
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER).decode()
    assert "credentials" in refused(url, nats_nkey_seed=other)
    assert_no_secret([r.getMessage() for r in caplog.records])


def test_token(token_server: PrivateNatsServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"nats://127.0.0.1:{token_server.ports[0]}"
    round_trip(url, nats_token=TOKEN)
    error = refused(url, nats_token="not-" + TOKEN)
    assert "credentials" in error
    assert_no_secret([error] + [r.getMessage() for r in caplog.records])


def test_tls(tls_server: PrivateNatsServer) -> None:
    assert tls_server.ca_file is not None
    port = tls_server.ports[0]
    round_trip(f"nats://localhost:{port}", ssl=True, ssl_ca_file=tls_server.ca_file)
    # a server whose certificate no trusted CA signed is refused
    assert "certificate" in refused(f"nats://localhost:{port}", ssl=True).lower()


def test_nobody_listening_fails_within_the_deadline() -> None:
    url = f"nats://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    assert "refused" in refused(url).lower()
    rpc = _rpc(url)
    try:
        start = time.monotonic()
        with pytest.raises(TransportError):
            rpc.call({}, "t", {"method": "add", "args": {"a": 1, "b": 1}}, timeout=1)
        assert time.monotonic() - start < 1.5
    finally:
        rpc.close()


def test_rpccore_check_knows_the_driver(users_server: PrivateNatsServer, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    port = users_server.ports[0]
    path = tmp_path / "cell.conf"
    path.write_text(f"[rpccore]\ncells = edge\n\n[cell:edge]\n"
                    f"transport_url = nats://127.0.0.1:{port}\nnats_nkey_seed = {SEED}\n")
    assert main(["--config-file", str(path), "check", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "driver: nats (rpccore-nats" in out and "round trip call: OK" in out, out
    path.write_text(f"[rpccore]\ncells = edge\n\n[cell:edge]\n"
                    f"transport_url = nats://alice:nope@127.0.0.1:{port}\n")
    assert main(["--config-file", str(path), "check", "--timeout", "2"]) == 1
    out = capsys.readouterr().out
    assert "connect: FAILED" in out and "credentials" in out, out
    assert_no_secret([out])


def test_a_server_without_jetstream_serves_calls_and_refuses_confirmed_casts(
        caplog: pytest.LogCaptureFixture) -> None:
    with PrivateNatsServer(jetstream=False) as server:
        rpc = _rpc(f"nats://127.0.0.1:{server.ports[0]}")
        try:
            rpc.serve(rpc.make_destination("plain.topic", host="h"), [Adder()]).start()
            assert_served_without_jetstream(rpc, "plain.topic")
        finally:
            rpc.close()
    assert any("no JetStream" in r.getMessage() for r in caplog.records)
