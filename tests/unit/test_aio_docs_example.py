"""The asyncio service of docs/asyncio.rst runs as the page says."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "aio_service.py"


@pytest.mark.asyncio
async def test_the_documented_service_runs_on_the_default_memory_cell(
        capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("aio_service", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    await module.main([])
    out = capsys.readouterr().out.splitlines()
    assert out == ["left: 100", "refused: ValueError only 80 nut left", "after ten more: 90",
                   "stock of bolts: 90", "{'bolt': 90, 'nut': 80}"]
