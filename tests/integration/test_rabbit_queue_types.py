"""Queue types on the rabbit driver (machine's RabbitMQ): moving a topic
between classic and quorum queues is refused with a ConfigError that names
the queue, both values and the way out (``rpccore check`` says the same);
poison messages on quorum queues are dropped and counted; nothing deletes a
queue on the operator's behalf."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import amqp
import pytest
from oslo_config import cfg

from queue_listing import admin_for
from rabbit_suites import poison_rounds
from rpccore import RPC
from rpccore.cli.check import run_check
from rpccore.errors import ConfigError
from rpccore.testing import single_cell_rpc
from rpccore_rabbit import addressing

RABBIT_URL = os.environ.get("RPCCORE_TEST_RABBIT_URL", "rabbit://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def exchange() -> Iterator[str]:
    name = f"qtypes-{os.urandom(4).hex()}"
    yield name
    admin = admin_for(RABBIT_URL)
    prefix = f"rpccore.{addressing.PARTS.encode(name)}."
    admin.delete([q.name for q in admin.list_queues() if q.name.startswith(prefix)], [name])


def _rpc(exchange: str, **options: Any) -> RPC:
    return single_cell_rpc(RABBIT_URL, control_exchange=exchange, **options)


class Adder:
    def add(self, ctx: dict[str, Any], a: int, b: int) -> int:
        return a + b


def _work_queue(exchange: str, topic: str) -> str:
    return addressing.queue_name(exchange, addressing.work_key(topic))


@pytest.mark.parametrize("before,after", [("classic", "quorum"), ("quorum", "classic")])
def test_changing_the_queue_type_is_a_config_error_naming_the_queue(
        exchange: str, before: str, after: str) -> None:
    old = _rpc(exchange, rabbit_queue_type=before)
    new = _rpc(exchange, rabbit_queue_type=after)
    try:
        old.serve(old.make_destination("qt.topic"), [Adder()]).start()
        old.cast({}, "qt.topic", {"method": "add", "args": {"a": 1, "b": 1}}, confirm=True)
        with pytest.raises(ConfigError) as info:
            new.serve(new.make_destination("qt.topic"), [Adder()]).start()
        text = str(info.value)
        queue = _work_queue(exchange, "qt.topic")
        assert queue in text and "x-queue-type" in text, text
        assert f"rabbit_queue_type = {before}" in text, text       # how to keep it
        assert "rabbitmqctl delete_queue" in text, text             # how to move on
        # the old queue and its servers are untouched: nothing was deleted
        assert old.call({}, "qt.topic", {"method": "add", "args": {"a": 2, "b": 3}},
                        timeout=10) == 5
    finally:
        new.close()
        old.close()


def test_a_queue_of_an_older_rpccore_is_a_config_error(exchange: str) -> None:
    queue = _work_queue(exchange, "old.topic")
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        conn.channel().queue_declare(queue, durable=False, auto_delete=True)  # the old layout
    rpc = _rpc(exchange)
    try:
        with pytest.raises(ConfigError) as info:
            rpc.serve(rpc.make_destination("old.topic"), [Adder()]).start()
        assert queue in str(info.value) and "older" in str(info.value), str(info.value)
    finally:
        rpc.close()
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        conn.channel().queue_declare(queue, passive=True)  # still there: never deleted


def test_a_queue_with_another_expiry_is_used_as_it_is(
        exchange: str, caplog: pytest.LogCaptureFixture) -> None:
    """A durable queue without x-expires (an rpccore before queue types with
    amqp_durable_queues = true): servers use it, with one warning, so such
    cells can upgrade one process at a time."""
    queue = _work_queue(exchange, "durable.topic")
    with amqp.Connection("127.0.0.1:5672", userid="guest", password="guest") as conn:
        conn.channel().queue_declare(queue, durable=True, auto_delete=False)
    rpc = _rpc(exchange)
    try:
        rpc.serve(rpc.make_destination("durable.topic"), [Adder()]).start()
        assert rpc.call({}, "durable.topic", {"method": "add", "args": {"a": 2, "b": 2}},
                        timeout=10) == 4
    finally:
        rpc.close()
    assert any(queue in r.getMessage() and "x-expires" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")


def test_another_durability_of_the_exchange_is_a_config_error(exchange: str) -> None:
    first = _rpc(exchange)
    second = _rpc(exchange, amqp_durable_queues=True)
    try:
        first.cell().driver().connect(5)
        start = time.monotonic()
        with pytest.raises(ConfigError) as info:
            second.cell().driver().connect(5)
        assert time.monotonic() - start < 3, "a refused setting must not wait for retries"
        assert "amqp_durable_queues" in str(info.value) and exchange in str(info.value)
    finally:
        second.close()
        first.close()


def test_rpccore_check_gives_the_same_way_out(exchange: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    def check(queue_type: str) -> str:
        config = tmp_path / f"{queue_type}.conf"
        config.write_text(f"[rpccore]\ncells = edge\ndefault_cell = edge\n\n[cell:edge]\n"
                          f"transport_url = {RABBIT_URL}\ncontrol_exchange = {exchange}\n"
                          f"rabbit_queue_type = {queue_type}\n")
        conf = cfg.ConfigOpts()
        conf(["--config-file", str(config)], project="rpccore-test")
        capsys.readouterr()
        run_check(conf, None, 10.0, False)
        return capsys.readouterr().out

    assert "round trip call: OK" in check("classic")
    out = check("quorum")
    assert "round trip call: FAILED: ConfigError" in out, out
    assert "rabbit_queue_type = classic" in out and "rabbitmqctl delete_queue" in out, out
    assert "what to do:" in out and "rabbit_queue_type" in out.split("what to do:")[1], out


def test_poison_messages_are_dropped_and_counted(exchange: str) -> None:
    """A request whose servers never finish it (they crash, or lose their
    connection, while running it) is handed to them at most the delivery
    limit's worth of times, then dropped and counted."""
    deliveries, poisoned, left = poison_rounds(RABBIT_URL, exchange, limit=2)
    assert (deliveries, poisoned, left) == (2, 1, 0)
