"""``rpccore check`` against real backends that are wrong in common ways."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rpccore.cli.main import main
from rpccore_zmq.testing import free_port


def run_check(tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str) -> tuple[int, str]:
    path = tmp_path / "cell.conf"
    path.write_text("[rpccore]\ncells = edge\n\n[cell:edge]\n" + body)
    code = main(["--config-file", str(path), "check", "--timeout", "3"])
    return code, capsys.readouterr().out


def test_unreachable_redis_matchmaker_fails_the_check(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_check(tmp_path, capsys, (
        f"transport_url = zmq://\nzmq_bind_address = 127.0.0.1\nzmq_port = {free_port()}\n"
        f"matchmaker = redis\nmatchmaker_url = redis://127.0.0.1:{free_port()}/0\n"))
    assert code == 1
    assert "matchmaker look-up: FAILED" in out and "what to do: nothing accepts" in out


def test_zmq_port_taken_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = run_check(tmp_path, capsys, (
            f"transport_url = zmq://\nzmq_bind_address = 127.0.0.1\nzmq_port = {port}\n"))
    assert code == 1
    assert "round trip call: FAILED" in out and "--connect-only" in out
