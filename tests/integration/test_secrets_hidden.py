"""Passwords and keys never appear in logs, exception messages or ``rpccore
check`` output, tested on connections that fail."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from oslo_config import cfg

import rpccore
from rpccore.cli.main import main
from rpccore_zmq.testing import free_port

PASSWORD = "pw-Hunter2-SECRET"
KEY = "key-Hunter2-SECRET"


def closed_port_url(scheme: str) -> str:
    return f"{scheme}://admin:{PASSWORD}@127.0.0.1:{free_port()}/"


def assert_hidden(text: str) -> None:
    assert PASSWORD not in text and KEY not in text
    assert "Hunter2" not in text


@pytest.mark.parametrize("scheme", ["rabbit", "qpid"])
def test_failing_broker_connection_hides_the_password(scheme: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rpc = rpccore.RPC(cfg.ConfigOpts())
    rpc.add_cell("bad", closed_port_url(scheme), secret_key=KEY, connect_timeout=1)
    try:
        with pytest.raises(rpccore.RPCError) as info:
            rpc.call({}, rpc.make_destination("t", cell="bad"), {"method": "m"}, timeout=3)
        assert isinstance(info.value, (rpccore.TransportError, rpccore.Timeout))
        assert_hidden(str(info.value) + repr(info.value))
        assert_hidden(str(rpc.cell("bad").url) + repr(rpc.cell("bad").url))
    finally:
        rpc.close()
    assert_hidden(caplog.text)
    assert_hidden("\n".join(str(r.args) for r in caplog.records))


def test_redis_matchmaker_password_hidden(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rpc = rpccore.RPC(cfg.ConfigOpts())
    rpc.add_cell("edge", "zmq://", zmq_port=free_port(), zmq_bind_address="127.0.0.1",
                 matchmaker="redis", secret_key=KEY,
                 matchmaker_url=f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(rpccore.RPCError) as info:
            rpc.call({}, rpc.make_destination("t", cell="edge"), {"method": "m"}, timeout=2)
        assert_hidden(str(info.value))
    finally:
        rpc.close()
    assert_hidden(caplog.text)


def test_check_output_hides_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"[rpccore]\ncells = a, b\n\n[cell:a]\ntransport_url = "
                    f"{closed_port_url('rabbit')}\nsecret_key = {KEY}\nconnect_timeout = 1\n\n"
                    f"[cell:b]\ntransport_url = {closed_port_url('qpid')}\n")
    assert main(["--config-file", str(conf), "check", "--timeout", "2"]) == 1
    out = capsys.readouterr()
    assert_hidden(out.out + out.err)
    assert "what to do: nothing accepts connections there" in out.out
