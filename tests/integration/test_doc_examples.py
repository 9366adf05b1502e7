"""The example configurations of the operator guide work as written: each is
loaded and every cell passes ``rpccore check`` (connect and a real call)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rpccore.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.conf")))
def test_example_config_passes_check(name: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(EXAMPLES)  # zmq-ring.conf names ring.json relative to it
    code = main(["--config-file", str(EXAMPLES / name), "check", "--timeout", "10"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAILED" not in out
    assert out.count("round trip call: OK") >= 1


def test_there_is_an_example_per_driver_and_matchmaker() -> None:
    text = "\n".join(p.read_text() for p in EXAMPLES.glob("*.conf"))
    for scheme in ("memory://", "rabbit://", "qpid://", "zmq://"):
        assert f"transport_url = {scheme}" in text
    for matchmaker in ("static", "ring", "redis"):
        assert f"matchmaker = {matchmaker}" in text
