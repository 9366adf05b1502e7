"""Cells of one process that serve on the same address and port share one
socket: they must agree on its CURVE keys and size limit, or the second one
gets a ConfigError instead of the first one's settings."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from zmq.utils import z85

from rpccore import RPC, ConfigError
from rpccore_zmq.listener import active_listeners
from rpccore_zmq.testing import free_port, zmq_rpc

HOST = "127.0.0.1"


class Echo:
    def echo(self, ctx: dict[str, Any], value: str) -> str:
        return value


def keys() -> dict[str, str]:
    """CURVE server keys, as hex (a Z85 key may hold '$')."""
    public, secret = zmq.curve_keypair()
    return {"zmq_curve_server_public_key": z85.decode(public).hex(),
            "zmq_curve_server_secret_key": z85.decode(secret).hex()}


@pytest.fixture
def rpcs() -> Iterator[list[RPC]]:
    made: list[RPC] = []
    yield made
    for rpc in made:
        rpc.close()


def serving(rpcs: list[RPC], port: int, **options: Any) -> tuple[RPC, str]:
    """A new ``RPC`` (a cell of its own) serving a fresh topic on ``port``,
    and that topic."""
    rpc = zmq_rpc(port, zmq_bind_address=HOST, **options)
    rpcs.append(rpc)
    topic = "shared." + os.urandom(4).hex()
    rpc.serve(rpc.make_destination(topic, host=HOST), [Echo()]).start()
    return rpc, topic


def test_same_settings_share_the_socket(rpcs: list[RPC]) -> None:
    port = free_port(HOST)
    curve = keys()
    first, first_topic = serving(rpcs, port, **curve)
    second, second_topic = serving(rpcs, port, **curve)
    assert first.cell().name != second.cell().name
    ours = [e for e in active_listeners() if e.endswith(f":{port}")]
    assert ours == [f"tcp://{HOST}:{port}"]
    client = zmq_rpc(port, zmq_curve_server_public_key=curve["zmq_curve_server_public_key"])
    rpcs.append(client)
    for topic in (first_topic, second_topic):
        dest = client.make_destination(topic, host=HOST)
        assert client.call({}, dest, {"method": "echo", "args": {"value": topic}},
                           timeout=10) == topic


@pytest.mark.parametrize("what", ["curve keys", "curve on and off", "size limit"])
def test_other_keys_or_size_limit_on_the_same_port_are_refused(rpcs: list[RPC],
                                                               what: str) -> None:
    port = free_port(HOST)
    first_keys = keys()
    if what == "curve keys":
        first, second = first_keys, keys()
    elif what == "curve on and off":
        first, second = first_keys, {}
    else:
        first, second = {"max_message_size": 65536}, {"max_message_size": 1 << 20}
    _, topic = serving(rpcs, port, **first)
    with pytest.raises(ConfigError) as info:
        serving(rpcs, port, **second)
    # the first cell's servers go on as before
    client = zmq_rpc(port, **{k: v for k, v in first.items() if "public" in k})
    rpcs.append(client)
    assert client.call({}, client.make_destination(topic, host=HOST),
                       {"method": "echo", "args": {"value": "still"}}, timeout=10) == "still"
    text = str(info.value)
    assert f":{port}" in text
    assert ("CURVE keys" if what.startswith("curve") else "max_message_size") in text
    for key in (*first_keys.values(), *second.values()):
        if isinstance(key, str):  # never a key in an error message
            assert key not in text


def test_once_the_first_cell_stops_another_may_listen_with_its_own_settings(
        rpcs: list[RPC]) -> None:
    port = free_port(HOST)
    first, _ = serving(rpcs, port, max_message_size=65536)
    first.close()
    rpcs.remove(first)
    second, topic = serving(rpcs, port, max_message_size=1 << 20)
    listener = active_listeners()[f"tcp://{HOST}:{port}"]
    assert listener.settings.max_size == 1 << 20
    assert listener.cell.name == second.cell().name
    # and it takes what the first cell's limit would have refused
    client = zmq_rpc(port, max_message_size=1 << 20)
    rpcs.append(client)
    value = "x" * 200_000
    assert client.call({}, client.make_destination(topic, host=HOST),
                       {"method": "echo", "args": {"value": value}}, timeout=10) == value


def test_other_tuning_is_shared_and_said(rpcs: list[RPC], caplog: Any) -> None:
    port = free_port(HOST)
    serving(rpcs, port, zmq_send_queue=1000)
    with caplog.at_level(logging.WARNING, logger="rpccore_zmq.listener"):
        serving(rpcs, port, zmq_send_queue=2000)
    assert "keeps the zmq_send_queue (1000)" in caplog.text
