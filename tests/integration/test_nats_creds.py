"""The nats driver with a ``.creds`` file (``nats_creds_file``) against a
private nats-server in operator (decentralized JWT) mode: the operator,
account and user JWTs are minted here (tests/private_nats_jwt.py). A user
of the server's account calls, casts and sends confirmed casts (JetStream
of that account); a user of an account without JetStream still serves calls
and casts; a user the server cannot trace to a known account, or whose seed
does not match its JWT, is refused in words; a missing or malformed file is
a ConfigError; the seed is never logged."""

from __future__ import annotations

import json
import logging
import os
import queue
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rpccore
from private_nats import assert_served_without_jetstream
from private_nats import connect_refused as refused
from private_nats_jwt import (
    Identity,
    PrivateNatsJwtServer,
    creds_text,
    mint_account,
    mint_operator,
    mint_user,
)
from rpccore.cli.check import hint_for
from rpccore.cli.main import main
from rpccore.errors import ConfigError
from rpccore.testing import single_cell_rpc

OPERATOR = mint_operator("rpccore-test")
ACCOUNT = mint_account("rpccore-app", OPERATOR)
USER = mint_user("alice", ACCOUNT)
#: signed by the same operator, but the server was never told of it
UNKNOWN_ACCOUNT = mint_account("unknown", OPERATOR)
STRANGER = mint_user("mallory", UNKNOWN_ACCOUNT)
IMPOSTOR_SEED = mint_user("eve", ACCOUNT).seed
#: known to the server, but its JWT gives it no JetStream
PLAIN_ACCOUNT = mint_account("no-jetstream", OPERATOR, jetstream=False)
PLAIN_USER = mint_user("bob", PLAIN_ACCOUNT)
SEEDS = (USER.seed, STRANGER.seed, IMPOSTOR_SEED, PLAIN_USER.seed, ACCOUNT.seed,
         PLAIN_ACCOUNT.seed, OPERATOR.seed)


class Recorder:
    """Adds (calls) and records what it was cast."""

    def __init__(self) -> None:
        self.seen: queue.Queue[str] = queue.Queue()

    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b

    def note(self, ctx: dict[str, Any], text: str) -> None:
        self.seen.put(text)


@pytest.fixture(scope="module")
def jwt_server() -> Iterator[PrivateNatsJwtServer]:
    server = PrivateNatsJwtServer(OPERATOR, [ACCOUNT, PLAIN_ACCOUNT])
    with server:  # killed and its folder removed on leaving
        yield server


def url_of(server: PrivateNatsJwtServer) -> str:
    return f"nats://127.0.0.1:{server.ports[0]}"


def write_creds(folder: Path, user: Identity, seed: str | None = None) -> str:
    path = folder / f"{user.name}.creds"
    path.write_text(creds_text(user, seed))
    path.chmod(0o600)
    return str(path)


def _rpc(url: str, **options: Any) -> rpccore.RPC:
    return single_cell_rpc(url, control_exchange=f"creds-{os.urandom(3).hex()}", **options)


def assert_no_seed(texts: list[str]) -> None:
    for text in texts:
        for seed in SEEDS:
            assert seed not in text, text


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [caplog.text] + [str(r.args) for r in caplog.records]


def connections(server: PrivateNatsJwtServer) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{server.monitor_ports[0]}/connz?auth=true&limit=1000"
    with urllib.request.urlopen(url, timeout=2) as answer:
        found: list[dict[str, Any]] = json.loads(answer.read()).get("connections") or []
        return found


def test_call_cast_and_confirmed_cast_with_a_creds_file(
        jwt_server: PrivateNatsJwtServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rpc = _rpc(url_of(jwt_server), nats_creds_file=write_creds(tmp_path, USER))
    recorder = Recorder()
    try:
        rpc.serve(rpc.make_destination("creds.topic", host="h"), [recorder]).start()
        assert rpc.call({}, "creds.topic", {"method": "add", "args": {"a": 2, "b": 3}},
                        timeout=10) == 5
        # the driver's connection is the user's, in the preloaded account
        ours = [c for c in connections(jwt_server) if "nats" in str(c.get("name"))]
        assert ours and {c.get("authorized_user") for c in ours} == {USER.public_key}
        assert {c.get("account") for c in ours} == {ACCOUNT.public_key}
        rpc.cast({}, "creds.topic", {"method": "note", "args": {"text": "plain"}})
        assert recorder.seen.get(timeout=10) == "plain"
        rpc.cast({}, "creds.topic", {"method": "note", "args": {"text": "confirmed"}},
                 confirm=True)
        assert recorder.seen.get(timeout=10) == "confirmed"
    finally:
        rpc.close()
    assert_no_seed(logged(caplog))


def test_an_account_without_jetstream_serves_calls_and_refuses_confirmed_casts(
        jwt_server: PrivateNatsJwtServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rpc = _rpc(url_of(jwt_server), nats_creds_file=write_creds(tmp_path, PLAIN_USER))
    recorder = Recorder()
    try:
        start = time.monotonic()
        rpc.serve(rpc.make_destination("plain.topic", host="h"), [recorder]).start()
        assert time.monotonic() - start < 5
        rpc.cast({}, "plain.topic", {"method": "note", "args": {"text": "plain"}})
        assert recorder.seen.get(timeout=10) == "plain"
        assert_served_without_jetstream(rpc, "plain.topic")
    finally:
        rpc.close()
    assert any("no JetStream" in r.getMessage() for r in caplog.records)
    assert_no_seed(logged(caplog))


@pytest.mark.parametrize("case", ["unknown account", "seed of another user"])
def test_creds_the_server_cannot_verify_are_refused_in_words(
        case: str, jwt_server: PrivateNatsJwtServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    if case == "unknown account":
        creds = write_creds(tmp_path, STRANGER)
    else:  # USER's JWT, signed for with a seed that is not USER's
        creds = write_creds(tmp_path, USER, seed=IMPOSTOR_SEED)
    error = refused(url_of(jwt_server), nats_creds_file=creds)
    assert "refused the credentials" in error, error
    hint = hint_for(error)
    assert hint is not None and "credentials" in hint, error
    assert_no_seed([error] + logged(caplog))


def config_error(url: str, **options: Any) -> str:
    """The ConfigError the cell's driver raises (at once, when it is made)."""
    rpc = _rpc(url, **options)
    try:
        start = time.monotonic()
        with pytest.raises(ConfigError) as info:
            rpc.cell().driver()
        assert time.monotonic() - start < 1
        assert_no_seed([str(info.value)])
        return str(info.value)
    finally:
        rpc.close()


def test_a_missing_or_malformed_creds_file_is_a_config_error(
        jwt_server: PrivateNatsJwtServer, tmp_path: Path) -> None:
    url = url_of(jwt_server)
    text = creds_text(USER)
    malformed = {
        "no.creds": None,
        "seed-only.creds": text[text.index("-----BEGIN USER NKEY SEED"):],
        "jwt-only.creds": text[:text.index("*")],
        "bare-seed.creds": USER.seed + "\n",
        "crlf.creds": text.replace("\n", "\r\n"),
    }
    for name, content in malformed.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content, newline="")
        assert name in config_error(url, nats_creds_file=str(path))
    error = config_error(url, nats_creds_file=write_creds(tmp_path, USER),
                         nats_nkey_seed=USER.seed)
    assert "not both" in error


def test_rpccore_check_with_a_creds_file_in_the_config(
        jwt_server: PrivateNatsJwtServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "cell.conf"
    for user, code, expected, timeout in [(USER, 0, "round trip call: OK", "5"),
                                          (STRANGER, 1, "credentials", "2")]:
        path.write_text(f"[rpccore]\ncells = edge\n\n[cell:edge]\n"
                        f"transport_url = {url_of(jwt_server)}\n"
                        f"nats_creds_file = {write_creds(tmp_path, user)}\n")
        assert main(["--config-file", str(path), "check", "--timeout", timeout]) == code
        out = capsys.readouterr()
        assert expected in out.out, out.out
        assert_no_seed([out.out, out.err])
    assert_no_seed(logged(caplog))
