"""A wrong password fails at once with a message that says so, on both AMQP
drivers: retrying cannot fix credentials, so nobody waits for a timeout."""

from __future__ import annotations

import time

import pytest
from oslo_config import cfg

import rpccore
from rpccore.cli.check import hint_for


@pytest.mark.parametrize("scheme", ["rabbit", "qpid"])
def test_wrong_password_fails_at_once(scheme: str) -> None:
    rpc = rpccore.RPC(cfg.ConfigOpts())
    rpc.add_cell("bad", f"{scheme}://guest:not-the-password@127.0.0.1:5672/")
    start = time.monotonic()
    try:
        with pytest.raises(rpccore.TransportError) as info:
            rpc.call({}, rpc.make_destination("t", cell="bad"), {"method": "m"}, timeout=30)
    finally:
        rpc.close()
    assert time.monotonic() - start < 5
    assert "not-the-password" not in str(info.value)
    hint = hint_for(str(info.value))
    assert hint is not None and "credentials" in hint, str(info.value)
