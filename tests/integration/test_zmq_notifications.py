"""Notifications on zmq across hosts, as drivers/zmq/README.md describes
them: one copy per pool however many hosts the pool's listeners run on, a
pool's copy moving to another of its hosts when one stops listening, plans
rebuilt once they are older than ``zmq_lookup_cache_ttl``, notification keys
apart from RPC topics, the retention bound, and ``zmq://`` alone.

Hosts are loopback addresses (one ``RPC`` bound to each), one listener runs
in a child process; topics are resolved with the redis matchmaker on the
machine's Redis, each test in a cell of its own name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from oslo_config import cfg

from rpccore import RPC, InvalidDestination
from rpccore.testing import NotificationRecorder, wait_until
from rpccore_zmq import protocol
from rpccore_zmq.testing import free_port, zmq_rpc

REDIS_URL = "redis://127.0.0.1:6379/0"
A, B, C = "127.0.0.2", "127.0.0.3", "127.0.0.4"


class Cell:
    """RPC objects of one zmq cell (a fresh name: its own matchmaker keys)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.name = "zmq-notify-" + os.urandom(4).hex()
        self.rpcs: list[RPC] = []

    def rpc(self, host: str = "127.0.0.5", **options: Any) -> RPC:
        rpc = zmq_rpc(self.port, cell=self.name, zmq_bind_address=host, matchmaker="redis",
                      matchmaker_url=REDIS_URL, **options)
        self.rpcs.append(rpc)
        return rpc

    def listen(self, host: str, topic: str, pool: str | None,
               **options: Any) -> tuple[NotificationRecorder, Any]:
        recorder = NotificationRecorder()
        listener = self.rpc(host, **options).listener([topic], [recorder], pool=pool).start()
        return recorder, listener

    def close(self) -> None:
        for rpc in reversed(self.rpcs):
            rpc.close()


@pytest.fixture
def cell() -> Iterator[Cell]:
    redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()  # fails loudly when missing
    made = Cell()
    yield made
    made.close()


def values(*recorders: NotificationRecorder) -> list[int]:
    return sorted(n.payload["n"] for r in recorders for n in r.notifications)


def notify(rpc: RPC, topic: str, numbers: range, **kwargs: Any) -> None:
    notifier = rpc.notifier("zmq.test", topics=[topic])
    for n in numbers:
        notifier.info({}, "test.event", {"n": n}, **kwargs)


def test_a_pool_spanning_hosts_gets_each_notification_once(cell: Cell) -> None:
    topic = "notify.span." + os.urandom(4).hex()
    billing_a, _ = cell.listen(A, topic, "billing")
    billing_b, _ = cell.listen(B, topic, "billing")
    search_c, _ = cell.listen(C, topic, "search")
    anonymous_a, _ = cell.listen(A, topic, None)
    anonymous_c, _ = cell.listen(C, topic, None)
    notify(cell.rpc(), topic, range(200))
    for pool in ((billing_a, billing_b), (search_c,), (anonymous_a, anonymous_c)):
        assert wait_until(lambda p=pool: len(values(*p)) >= 200), values(*pool)
    time.sleep(0.3)  # duplicates would come now
    assert values(billing_a, billing_b) == list(range(200))
    assert values(search_c) == list(range(200))
    assert values(anonymous_a, anonymous_c) == list(range(200))
    for recorder in (billing_a, billing_b, anonymous_a, anonymous_c):
        assert recorder.notifications, "every host of a pool takes its turn"


def test_a_pool_keeps_receiving_when_its_listener_on_one_host_stops(cell: Cell) -> None:
    topic = "notify.stop." + os.urandom(4).hex()
    on_a, listener_a = cell.listen(A, topic, "workers")
    _, other_a = cell.listen(A, topic, "other")  # keeps host A's socket up
    on_b, _ = cell.listen(B, topic, "workers")
    # its plan keeps naming host A for pool "workers"
    notifier = cell.rpc(zmq_lookup_cache_ttl=60.0, zmq_receipt_timeout=0.3)
    notify(notifier, topic, range(50))
    assert wait_until(lambda: len(values(on_a, on_b)) == 50)
    listener_a.stop()
    assert listener_a.wait(5)
    start = time.monotonic()
    notify(notifier, topic, range(50, 100))  # A refuses; B takes them
    assert wait_until(lambda: len(values(on_a, on_b)) >= 100)
    assert time.monotonic() - start < 1.0, "a refusal moves the copy on at once"
    stats = notifier.cell().stats
    assert stats.get("zmq_rerouted") >= 1
    other_a.stop()  # host A stops listening at all: silent, then marked dead
    assert other_a.wait(5)
    notify(notifier, topic, range(100, 150))
    assert wait_until(lambda: len(values(on_a, on_b)) >= 150)
    time.sleep(0.3)
    assert values(on_a, on_b) == list(range(150))
    assert all(n.payload["n"] < 50 for n in on_a.notifications)
    # pool "other" listened on A alone: its last 50 copies found nobody
    # acknowledging them there, and were counted as lost
    assert stats.get("returned") == 0
    assert wait_until(lambda: stats.get("zmq_lost_notifications") == 50)


def test_a_pool_that_starts_later_is_found_within_twice_the_lookup_ttl(cell: Cell) -> None:
    topic = "notify.late." + os.urandom(4).hex()
    early, _ = cell.listen(A, topic, "early")
    notifier = cell.rpc(zmq_lookup_cache_ttl=0.2).notifier("zmq.test", topics=[topic])
    notifier.info({}, "test.event", {"n": 0})
    late, _ = cell.listen(B, topic, "late")
    sent = 1
    while not late.notifications and sent < 400:  # the plan: 0.2 s old, then rebuilt
        notifier.info({}, "test.event", {"n": sent})
        sent += 1
        time.sleep(0.01)
    assert late.notifications, "the late pool was never found"
    first = late.notifications[0].payload["n"]
    assert first * 0.01 < 2.0, f"found only after {first} notifications"
    for n in range(sent, sent + 20):
        notifier.info({}, "test.event", {"n": n})
    assert wait_until(lambda: len(values(early)) == sent + 20)
    assert wait_until(lambda: values(late) == list(range(first, sent + 20)))
    # a notifier that notifies rarely: a plan older than twice the TTL is
    # rebuilt before it is used, so the next notification finds a new pool
    later, _ = cell.listen(C, topic, "later")
    time.sleep(0.5)
    notifier.info({}, "test.event", {"n": 1000})
    assert wait_until(lambda: values(later) == [1000])


def test_notification_keys_are_apart_from_rpc_topics(cell: Cell) -> None:
    topic = "notify.keys." + os.urandom(4).hex()
    _, listener = cell.listen(A, topic, "pool")
    matchmaker = listener.cell.driver()._registry.matchmaker()
    assert matchmaker.lookup(protocol.notification_key(topic)) == [A]
    assert matchmaker.lookup(topic) == []
    client = cell.rpc()
    reserved = protocol.notification_key(topic)
    with pytest.raises(InvalidDestination, match="reserved for notifications"):
        client.cast({}, reserved, {"method": "x", "args": {}})
    with pytest.raises(InvalidDestination, match="reserved for notifications"):
        client.serve(reserved, [object()]).start()
    listener.stop()
    assert matchmaker.lookup(protocol.notification_key(topic)) == []


def test_confirmed_notifications_return_once_every_pool_has_its_copy(cell: Cell) -> None:
    topic = "notify.confirm." + os.urandom(4).hex()
    first, _ = cell.listen(A, topic, "one")
    second, _ = cell.listen(B, topic, "two")
    notifier = cell.rpc()
    notify(notifier, topic, range(10), confirm=True)
    assert wait_until(lambda: len(values(first)) == len(values(second)) == 10)
    start = time.monotonic()
    notify(notifier, "notify.nobody." + os.urandom(4).hex(), range(3), confirm=True)
    assert time.monotonic() - start < 2, "nobody listens: not an error, no wait"


class Blocking(NotificationRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        self.release.wait(10)
        super().info(ctx, publisher_id, event_type, payload, metadata)


def test_what_a_pool_holds_unacknowledged_is_bounded(
        cell: Cell, caplog: pytest.LogCaptureFixture) -> None:
    topic = "notify.bound." + os.urandom(4).hex()
    endpoint = Blocking()
    rpc = cell.rpc(A, notification_max_queue_length=5, server_workers=1)
    rpc.listener([topic], [endpoint], pool="slow").start()
    notify(cell.rpc(), topic, range(20), confirm=True)
    assert wait_until(lambda: rpc.cell().stats.get("notifications_dropped") == 15)
    assert any("dropped" in r.getMessage() for r in caplog.records)
    endpoint.release.set()
    assert wait_until(lambda: len(endpoint.notifications) == 5)
    time.sleep(0.3)
    assert values(endpoint) == list(range(5))


CHILD_LISTENER = r'''
import json, sys
from rpccore.testing import single_cell_rpc

options, topic, log_path = json.loads(sys.argv[1])

class Logger:
    def info(self, ctx, publisher_id, event_type, payload, metadata):
        with open(log_path, "a") as log:
            log.write(f"{payload['n']}\n")

rpc = single_cell_rpc("zmq://", cell=options.pop("cell"), **options)
rpc.listener([topic], [Logger()], pool="billing").start()
print("ready", flush=True)
sys.stdin.read()
rpc.close()
'''


def test_a_pool_spanning_processes_gets_each_notification_once(
        cell: Cell, tmp_path: Path) -> None:
    topic = "notify.procs." + os.urandom(4).hex()
    log_path = tmp_path / "child.log"
    options = {"cell": cell.name, "zmq_port": cell.port, "zmq_bind_address": B,
               "matchmaker": "redis", "matchmaker_url": REDIS_URL}
    child = subprocess.Popen([sys.executable, "-c", CHILD_LISTENER,
                              json.dumps([options, topic, str(log_path)])],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        here, _ = cell.listen(A, topic, "billing")

        def there() -> list[int]:
            return [int(line) for line in log_path.read_text().split()] \
                if log_path.exists() else []

        notify(cell.rpc(), topic, range(100))
        assert wait_until(lambda: len(values(here)) + len(there()) >= 100)
        time.sleep(0.3)
        assert sorted(values(here) + there()) == list(range(100))
        assert here.notifications and there(), "both processes take their turn"
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


def test_zmq_url_alone_carries_notifications_on_this_machine(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "app.conf"
    path.write_text(textwrap.dedent(f"""\
        [rpccore]
        cells = local

        [cell:local]
        transport_url = zmq://?zmq_port={port}&zmq_receipt_timeout=0.5
        """))
    rpcs = []
    for _ in range(2):
        conf = cfg.ConfigOpts()
        conf(["--config-file", str(path)], project="rpccore-test")
        rpcs.append(RPC(conf))
    listening, notifying = rpcs
    try:
        # nobody listens on this machine yet: the first notification waits
        # for 127.0.0.1's answer (the receipt timeout), the next ones do not
        start = time.monotonic()
        notify(notifying, "notifications", range(1))
        assert time.monotonic() - start < 2.0
        start = time.monotonic()
        notify(notifying, "notifications", range(10))
        assert time.monotonic() - start < 0.2
        recorder = NotificationRecorder()
        listening.listener(["notifications"], [recorder], pool="billing").start()
        start = time.monotonic()
        n = 100
        while not recorder.notifications and time.monotonic() - start < 10:
            notify(notifying, "notifications", range(n, n + 1))
            n += 1
            time.sleep(0.02)
        # found once the silent host answers a ping and the plan is rebuilt
        assert recorder.notifications and time.monotonic() - start < 5.0
        notify(notifying, "notifications", range(1000, 1005))
        assert wait_until(lambda: values(recorder)[-5:] == list(range(1000, 1005)))
    finally:
        notifying.close()
        listening.close()
