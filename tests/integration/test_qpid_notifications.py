"""Notifications on the qpid driver beyond the conformance kit (which runs
on RabbitMQ 4 in tests/integration/test_rabbitmq4.py):

- on the machine's RabbitMQ 3.10 (v1 addresses, ``amqp_addresses = auto``)
  a notifier and a listener raise ``ConfigError`` saying what to do, once
  the broker said what it is, and nothing is declared or sent; the
  benchmark's notification scenario reports qpid there as not measured on
  this broker (no row, no error);
- a private RabbitMQ 4 node (tests/private_rabbit4.py), SIGKILLed and
  restarted while notifiers send with ``confirm=True``, loses none of the
  notifications it confirmed, in a pool whose listener ran through the
  crash and in one whose listener was stopped before it and came back
  only after the restart (durable pool queues, their bindings on
  ``amq.direct`` and the durable messages in them survive the restart).
  Duplicates are allowed (at least once) and reported.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notification_traffic import Notifying, received_numbers
from private_rabbit4 import PrivateRabbit4
from queue_listing import admin_for
from rpccore import RPC
from rpccore.errors import ConfigError
from rpccore.testing import NotificationRecorder, single_cell_rpc, wait_until
from rpccore_qpid import addressing

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the benchmarks package

SHARED = os.environ.get("RPCCORE_QPID_URL", "qpid://guest:guest@127.0.0.1:5672/")
BEFORE, AFTER = 200, 200  # confirmed notifications per notifier before the kill / after


def _rpc(url: str, namespace: str, **options: Any) -> RPC:
    return single_cell_rpc(url, control_exchange=namespace, **options)


def test_notifications_on_rabbitmq3_are_a_config_error_saying_what_to_do() -> None:
    namespace = f"qpid-notify-v1-{os.urandom(4).hex()}"
    rpc = _rpc(SHARED, namespace)
    try:
        with pytest.raises(ConfigError) as info:
            rpc.notifier("pub", topics=["events"]).info({}, "e", {}, confirm=True)
        for words in ("RabbitMQ 4", "v1 addresses", "cannot bind a named queue to an "
                      "exchange", "amqp_addresses = auto or v2", "notification_cell"):
            assert words in str(info.value), str(info.value)
        with pytest.raises(ConfigError, match="only on RabbitMQ 4"):
            rpc.listener(["events"], [NotificationRecorder()], pool="billing").start()
        assert rpc.cell().driver()._io().layout.name == "v1"  # type: ignore[attr-defined]
        stats = rpc.stats()[rpc.default_cell]
        assert stats["notifications_sent"] == 0 and stats["failed"] == 0
        # RPC still works on the cell (the error is about notifications only)
        rpc.cast({}, rpc.make_destination("nobody"), {"method": "m", "args": {}})
    finally:
        rpc.close()
    names = {q.name for q in admin_for(SHARED.replace("qpid://", "rabbit://", 1)).list_queues()}
    assert addressing.pool_queue(namespace, "events", "billing") not in names


def test_the_benchmark_does_not_measure_qpid_notifications_on_rabbitmq3(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.suite import scenarios
    from benchmarks.suite.progress import Progress

    only = [s for s in scenarios.SCENARIOS if s.key == "notifications"]
    monkeypatch.setattr(scenarios, "selected", lambda driver, quick: only)
    lines: list[str] = []
    run = scenarios.DriverRun("qpid", True, 3, Progress(1, io.StringIO()), lines.append)
    run.run()
    assert run.rows == [] and run.errors == [], (run.rows, run.errors)
    [line] = [line for line in lines if "notifications" in line]
    assert "not measured on this broker" in line and "RabbitMQ 4" in line, line


@pytest.fixture(scope="module")
def rabbitmq4() -> Iterator[PrivateRabbit4]:
    with PrivateRabbit4() as node:
        yield node


def _restart(node: PrivateRabbit4) -> None:
    """Start the killed node again. RabbitMQ 4.0.5 sometimes fails to boot
    after a SIGKILL with ``failed_to_deny_deprecated_features
    [transient_nonexcl_queues]``: its check of that feature reads Mnesia's
    ``rabbit_queue`` table before the table is loaded (``no_exists``, seen
    in about one restart in ten here), and the node exits at once. That is
    the broker's boot, not this test's subject: start it once more."""
    for attempt in (1, 2, 3):
        node.restart()
        try:
            node.wait_ready(60)
            return
        except TimeoutError as exc:
            if attempt == 3 or "failed_to_deny_deprecated_features" not in str(exc):
                raise
            print(f"RabbitMQ refused to boot after the crash (attempt {attempt}): its "
                  "deprecated-feature check ran before Mnesia loaded; starting it again")


def _lost(pool: str, missing: set[int], killed_at: int) -> str:
    return (f"pool {pool}: {len(missing)} confirmed notifications lost, numbered "
            f"{min(missing)} to {max(missing)}; {killed_at} were confirmed before the kill")


def test_confirmed_notifications_survive_a_rabbitmq4_crash(rabbitmq4: PrivateRabbit4) -> None:
    url = rabbitmq4.url("qpid")
    namespace = f"qpid-notify-faults-{os.urandom(3).hex()}"
    topic = "faults"
    # short deadlines: a notification unconfirmed while the node is down
    # fails (and is counted as not confirmed) instead of holding the sender
    options = {"heartbeat_interval": 2, "rpc_response_timeout": 5}
    rpcs = [_rpc(url, namespace, **options) for _ in range(3)]
    sender: Notifying | None = None
    try:
        running, stopped = NotificationRecorder(), NotificationRecorder()
        rpcs[0].listener([topic], [running], pool="running").start()
        away = rpcs[1].listener([topic], [NotificationRecorder()], pool="away").start()
        away.stop()
        assert away.wait(10)
        # RabbitMQ 4.0.5 (Mnesia) lost, once in about 75 runs of this test and
        # once in 39 runs of the same crash checked at the broker, the binding
        # of a pool queue made 1-2 s before the SIGKILL (the queue and its
        # backlog survived; what was sent after the restart bypassed the pool
        # until a listener bound it again); none in 100 runs with this: have
        # the broker write its metadata log first. This test checks the
        # notifications, not how fresh metadata survives a crash (the
        # README's "broker caveat").
        rabbitmq4.rabbitmqctl("eval", "mnesia:dump_log().")
        sender = Notifying(rpcs[2], topic)
        sender.start()
        assert wait_until(lambda: len(sender.confirmed) >= BEFORE, 60)
        rabbitmq4.kill()
        killed_at = len(sender.confirmed)
        _restart(rabbitmq4)
        assert wait_until(lambda: len(sender.confirmed) >= killed_at + AFTER, 60), \
            (killed_at, len(sender.confirmed), sender.failed)
        sender.halt.set()
        sender.join(30)
        rpcs.append(_rpc(url, namespace, **options))
        rpcs[-1].listener([topic], [stopped], pool="away").start()
        for pool, recorder in (("running", running), ("away", stopped)):
            if not wait_until(lambda r=recorder: sender.confirmed <= set(received_numbers(r)), 30):
                bindings = rabbitmq4.rabbitmqctl("list_bindings", "-q", "--no-table-headers",
                                                 "source_name", "destination_name")
                missing = sender.confirmed - set(received_numbers(recorder))
                pytest.fail(_lost(pool, missing, killed_at)
                            + f"; bindings after the restart:\n{bindings}")
            got = received_numbers(recorder)
            print(f"pool {pool}: {len(sender.confirmed)} confirmed ({sender.failed} not), "
                  f"{killed_at} before the kill, {len(got)} received, "
                  f"{len(got) - len(set(got))} duplicates")
        # the crash was seen: the notifier's and the running listener's
        # connections came back
        reconnects = [rpc.stats()[rpc.default_cell]["reconnects"] for rpc in rpcs]
        assert reconnects[0] >= 1 and reconnects[2] >= 1, reconnects
    finally:
        if sender is not None:
            sender.halt.set()
        for rpc in rpcs:
            rpc.close()
