"""The example configurations of the operator guide work as written: each is
loaded and every cell passes ``rpccore check`` (connect and a real call).

The examples name fixed control exchanges (``nova``, ``neutron``), whose
durable queues on the shared broker outlive a run and may have been made by
older code with other settings (406, or stale queues). So each example runs
from a copy whose ``control_exchange`` values get a suffix unique to the run
(nothing else changes; the test checks that), and the queues of those
exchanges are deleted when it ends.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_listing import admin_for
from rpccore.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BROKER = "rabbit://guest:guest@127.0.0.1:5672/"
_CONTROL_EXCHANGE = re.compile(r"^(control_exchange[ \t]*=[ \t]*)(\S+)$", re.MULTILINE)
RUN = os.urandom(4).hex()


@pytest.fixture(scope="module", autouse=True)
def _delete_this_runs_queues() -> Iterator[None]:
    yield
    admin = admin_for(BROKER)
    admin.delete(queues=[q.name for q in admin.list_queues() if RUN in q.name], exchanges=[])


def _unique_copy(name: str, folder: Path) -> Path:
    """``name`` copied into ``folder`` (with the files it names), every
    ``control_exchange`` made unique to this run."""
    for other in EXAMPLES.iterdir():
        if other.is_file():
            shutil.copy(other, folder / other.name)
    text = (EXAMPLES / name).read_text()
    unique = _CONTROL_EXCHANGE.sub(lambda m: f"{m[1]}{m[2]}-{RUN}", text)
    assert _CONTROL_EXCHANGE.sub(lambda m: m[1] + m[2].removesuffix(f"-{RUN}"), unique) \
        == text  # only the control exchanges differ
    (folder / name).write_text(unique)
    return folder / name


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.conf")))
def test_example_config_passes_check(name: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    config = _unique_copy(name, tmp_path)
    monkeypatch.chdir(tmp_path)  # zmq-ring.conf names ring.json relative to it
    code = main(["--config-file", str(config), "check", "--timeout", "10"])
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
