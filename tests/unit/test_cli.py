"""The rpccore command line, in-process on the memory driver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rpccore.cli.main import main
from rpccore.testing import memory_rpc


class Echo:
    def echo(self, ctx: dict[str, Any], value: Any) -> Any:
        return {"value": value, "ctx": ctx}


def write_conf(tmp_path: Path, url: str) -> str:
    path = tmp_path / "cli.conf"
    path.write_text(f"[rpccore]\ncells = main\n\n[cell:main]\ntransport_url = {url}\n")
    return str(path)


def test_plugins_lists_memory_with_its_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "memory" in out and "rpccore " in out


def test_call_and_cast_from_the_shell(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_conf(tmp_path, "memory:///cli-test")
    with memory_rpc("cli-test") as server_rpc:
        server_rpc.serve("svc", [Echo()]).start()
        assert main(["--config-file", conf, "call", "svc", "echo", '{"value": 7}',
                     "--context", '{"user": "op"}']) == 0
        out = json.loads(capsys.readouterr().out)
        assert out == {"value": 7, "ctx": {"user": "op"}}
        assert main(["--config-file", conf, "cast", "svc", "echo", '{"value": 8}']) == 0
        assert main(["--config-file", conf, "call", "svc", "echo", "not json"]) == 2
        assert main(["--config-file", conf, "call", "nobody", "echo", "{}"]) == 1
        assert "Undeliverable" in capsys.readouterr().err


class Versioned:
    rpc_version = "2.4"
    rpc_namespace = "compute"

    def ping(self, ctx: dict[str, Any]) -> str:  # never what `rpccore ping` reaches
        return "endpoint"


def test_ping_prints_what_the_server_says_about_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_conf(tmp_path, "memory:///cli-ping")
    with memory_rpc("cli-ping") as server_rpc:
        server_rpc.serve(server_rpc.make_destination("svc", host="node-1"),
                         [Versioned()]).start()
        assert main(["--config-file", conf, "ping", "svc", "--host", "node-1"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["host"] == "node-1" and out["topic"] == "svc"
        assert out["versions"] == {"compute": "2.4"}
        assert isinstance(out["pid"], int) and out["uptime"] >= 0
        assert main(["--config-file", conf, "ping", "svc", "--all", "--timeout", "0.5"]) == 0
        assert [a["host"] for a in json.loads(capsys.readouterr().out)] == ["node-1"]
        assert main(["--config-file", conf, "ping", "nobody", "--timeout", "0.5"]) == 1
        assert "Undeliverable" in capsys.readouterr().err


def test_check_reports_ok_and_failures(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_conf(tmp_path, "memory:///check-test")
    assert main(["--config-file", conf, "check", "--stats"]) == 0
    out = capsys.readouterr().out
    assert "round trip call: OK" in out and "1 of 1 cells OK" in out
    assert "stats of cell main" in out
    bad = write_conf(tmp_path, "rabbitx://u:hunter2@h/")
    assert main(["--config-file", bad, "check"]) == 1
    out = capsys.readouterr().out
    assert "no driver named 'rabbitx'" in out and "hunter2" not in out


def test_demo_runs_on_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--driver", "memory"]) == 0
    out = capsys.readouterr().out
    assert "call add(1, 2) -> 3" in out
    assert "fanout refresh reached every server" in out
    assert "remote error, as expected: ValueError" in out


def test_sample_config_generator_covers_core_options() -> None:
    out = subprocess.run([sys.executable, "-m", "oslo_config.generator", "--namespace",
                          "rpccore"], capture_output=True, text=True, check=True).stdout
    assert "[cell:name]" in out and "#transport_url = memory://" in out
    assert "#default_cell = default" in out


def test_check_points_out_typos_and_missing_sections(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typos.conf"
    path.write_text("[rpccore]\ncells = main, edge\n\n[cell:main]\n"
                    "transport_url = memory:///typos\nrpc_respone_timeout = 5\n\n"
                    "[cell:edgee]\ntransport_url = memory:///typos\n")
    # --config-file may also follow the subcommand
    assert main(["check", "--config-file", str(path)]) == 1
    out = capsys.readouterr().out
    assert "that nothing uses (typos?): rpc_respone_timeout" in out
    assert "listed in [rpccore] cells but no config file has a [cell:edge] section" in out
    assert "cell:edgee" in out and "1 of 2 cells OK" in out


def test_check_without_config_says_what_it_checks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--connect-only"]) == 0
    out = capsys.readouterr().out
    assert "no --config-file given" in out and "round trip" not in out


def test_misspelt_driver_gets_a_suggestion(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config-file", write_conf(tmp_path, "memroy://"), "check"]) == 1
    assert "did you mean 'memory'?" in capsys.readouterr().out


def test_check_reports_the_server_side_with_ping(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_conf(tmp_path, "memory:///check-ping")
    with memory_rpc("check-ping") as server_rpc:
        for host in ("node-1", "node-2"):
            server_rpc.serve(server_rpc.make_destination("svc", host=host),
                             [Versioned()]).start()
        assert main(["--config-file", conf, "check", "--topic", "svc",
                     "--timeout", "0.5"]) == 0
        out = capsys.readouterr().out
        assert "server side (ping): host rpccore-check, pid" in out
        assert "servers of 'svc': 2 answered" in out
        assert "host node-1, pid" in out and "host node-2, pid" in out
        assert "versions: compute 2.4" in out
        assert main(["--config-file", conf, "check", "--topic", "nobody",
                     "--timeout", "0.3"]) == 1
        out = capsys.readouterr().out
        assert "servers of 'nobody': NONE answered a ping within 0.3 s" in out
        assert "0 of 1 cells OK" in out
