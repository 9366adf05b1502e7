"""The driver conformance suite bound to the qpid driver, for any broker:
tests/conformance/test_qpid.py runs it on the machine's RabbitMQ 3.10 (v1
addresses), tests/integration/test_rabbitmq4.py on a private RabbitMQ 4 node
(v2 addresses). Also the guard of the qpid queue layout, and the clean-up
of a run's queues.

Notifications: :class:`QpidConformance` does not include the kit's
notification mixins, because whether a qpid cell carries them depends on
its broker, not on the driver class (``stores_notifications`` is a class
attribute, True): RabbitMQ 3.x (v1 addresses) cannot hold listener pools
and raises ``ConfigError``
(tests/integration/test_qpid_notifications.py checks that), while the
RabbitMQ 4 suite adds ``BrokerNotificationConformance`` itself.

Subclass :class:`QpidConformance` (the name does not start with ``Test``, so
importing it collects nothing) and set ``url``."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import amqp

from process_peers import ServerProcess
from queue_listing import BrokerAdmin, Queue, transient_shared
from rpccore import RPC
from rpccore.testing import BrokerDriverConformance, NotificationRecorder, single_cell_rpc
from rpccore.testing.server_peers import NAPPER
from rpccore_qpid import addressing

#: every control_exchange (namespace) the suites used in this process
NAMESPACES: set[str] = set()


class QpidConformance(BrokerDriverConformance):
    url = "qpid://guest:guest@127.0.0.1:5672/"

    def make_rpc(self, host: str | None = None, **options: Any) -> RPC:
        if not hasattr(self, "_namespace"):
            self._namespace = f"conformance-{os.urandom(4).hex()}"
            NAMESPACES.add(self._namespace)
        options.setdefault("control_exchange", self._namespace)
        return single_cell_rpc(self.url, **options)

    def start_server_peer(self, topic: str, host: str) -> ServerProcess:
        self.make_rpc().close()  # names the namespace
        return ServerProcess(self.url, topic, host, [(NAPPER, {"announce": True})],
                             control_exchange=self._namespace).wait_ready()


def _ours(name: str, namespaces: set[str]) -> bool:
    parts = name.split(".")
    return (name.startswith(addressing.PREFIX + ".") and len(parts) > 2
            and parts[2] in {addressing.encode_part(n) for n in namespaces})


def delete_idle_queues(namespaces: set[str], ctl: tuple[str, ...] = ("rabbitmqctl",),
                       address: str = "127.0.0.1:5672") -> int:
    """Delete the unused work and direct queues of ``namespaces`` (test-side,
    over AMQP 0-9-1: AMQP 1.0 on RabbitMQ 3.10 cannot delete queues)."""
    listing = subprocess.run([*ctl, "list_queues", "-q", "--no-table-headers", "name",
                              "consumers"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    names = [line.split("\t")[0] for line in listing.splitlines()
             if line.endswith("\t0") and _ours(line.split("\t")[0], namespaces)]
    with amqp.Connection(address, userid="guest", password="guest") as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name, if_unused=True)
    return len(names)


def check_qpid_layout(url: str, admin: BrokerAdmin, pools: bool = False) -> list[Queue]:
    """The guard of the qpid queue layout: with a server (work, host and fanout
    queues) and a caller (reply queue) running, and with ``pools`` a
    notification listener (its pool queue: v2 addresses only), lists the
    queues of this run (by name, reply queues by their drivers, server-named
    fanout queues by their binding) and fails on any non-durable
    non-exclusive one.

    :returns: the queues it checked.
    """
    namespace = f"layout-{os.urandom(4).hex()}"
    NAMESPACES.add(namespace)
    rpcs = []
    try:
        for _ in range(2):
            rpc = single_cell_rpc(url, control_exchange=namespace)
            rpcs.append(rpc)
        server, caller = rpcs
        server.serve(server.make_destination("layout", host="h1"), [_Echo()]).start()
        if pools:
            server.listener(["layout"], [NotificationRecorder()], pool="layout").start()
        assert caller.call({}, "layout", {"method": "echo", "args": {"v": 1}}, timeout=10) == 1
        replies = {rpc.cell().driver()._reply_queue for rpc in rpcs}  # type: ignore
        fanout_key = addressing.fanout_key(namespace, "layout")
        bindings = subprocess.run(
            [*admin.ctl, "list_bindings", "-q", "--no-table-headers", "-p", admin.vhost,
             "destination_name", "routing_key"], capture_output=True, text=True,
            timeout=60, check=True).stdout
        fanout = {line.split("\t")[0] for line in bindings.splitlines()
                  if line.endswith("\t" + fanout_key)}
        mine = [q for q in admin.list_queues()
                if _ours(q.name, {namespace}) or q.name in replies | fanout]
    finally:
        for rpc in rpcs:
            rpc.close()
    kinds = {q.name.split(".")[1] if q.name.startswith(addressing.PREFIX) else "other"
             for q in mine}
    expected = {"w", "d", "p"} if pools else {"w", "d"}
    assert expected <= kinds and len(fanout) == 1 and len(replies & {q.name for q in mine}) \
        >= 1, mine
    assert not [q for q in mine if transient_shared(q)], mine
    return mine


class _Echo:
    def echo(self, ctx: dict[str, Any], v: Any) -> Any:
        return v
