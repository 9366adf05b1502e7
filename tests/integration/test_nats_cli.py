"""``rpccore demo --driver nats`` against the machine's NATS (``rpccore
check`` on nats cells is in test_nats_connection.py)."""

from __future__ import annotations

import pytest

from private_nats import NATS_URL
from rpccore.cli.main import main


def test_demo_runs_on_nats(monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RPCCORE_DEMO_NATS_URL", NATS_URL)
    assert main(["demo", "--driver", "nats"]) == 0
    out = capsys.readouterr().out
    assert f"== driver nats ({NATS_URL})" in out
    for line in ("call add(1, 2) -> 3", "shared by hosts ['compute.1', 'compute.2']",
                 "fanout refresh reached every server", "remote error, as expected",
                 "cast reboot(42) to 'compute.2' arrived: True"):
        assert line in out, out


def test_demo_names_nats_without_running_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--driver", "memory"]) == 0
    assert "== driver nats" not in capsys.readouterr().out
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "== driver nats" not in out and "rpccore demo --driver nats" in out
