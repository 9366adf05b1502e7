"""A private RabbitMQ cluster for fault tests: three nodes of
tests/private_rabbit.py joined with ``rabbitmqctl join_cluster``."""

from __future__ import annotations

import time
import uuid
from types import TracebackType

from private_rabbit import PrivateRabbit, free_port


class PrivateCluster:
    """Three (``size``) private nodes joined into one RabbitMQ cluster: each
    with its own AMQP and distribution ports, all with one epmd port of
    their own and one Erlang cookie; nodes 2.. join node 1 with
    ``rabbitmqctl join_cluster``. Start-up runs the nodes in parallel.

    Usage::

        with PrivateCluster() as cluster:
            url = cluster.url("rabbit")        # every node, in order, for failover
            cluster.nodes[0].kill(); cluster.nodes[0].restart()
            cluster.leader_of(queue)           # the node leading a quorum queue

    ``net_ticktime`` (seconds) is how long the nodes take to notice a hung
    peer (RabbitMQ's default is 60; tests use a few seconds).
    """

    def __init__(self, size: int = 3, net_ticktime: int = 4,
                 node_class: type[PrivateRabbit] = PrivateRabbit) -> None:
        epmd_port = free_port()
        cookie = uuid.uuid4().hex
        self.nodes = [node_class(epmd_port=epmd_port, cookie=cookie,
                                 config=f"net_ticktime = {net_ticktime}\n")
                      for _ in range(size)]

    def start(self, timeout: float = 90.0) -> PrivateCluster:
        """Start every node, wait for them, join them; returns when the
        cluster has all its members running.

        :raises TimeoutError: a node did not start or join in time.
        """
        first = self.nodes[0]
        first.start()
        time.sleep(1.0)  # let the first node start the shared epmd
        for node in self.nodes[1:]:
            node.start()
        for node in self.nodes:
            node.wait_ready(timeout)
        for node in self.nodes[1:]:
            node.rabbitmqctl("stop_app")
            node.rabbitmqctl("join_cluster", first.nodename)
            node.rabbitmqctl("start_app")
        for node in self.nodes:
            node.wait_ready(timeout)
        running = first.rabbitmqctl("eval", "length(rabbit_nodes:all_running()).")
        if running.strip() != str(len(self.nodes)):
            raise TimeoutError(f"the cluster runs {running.strip()} of {len(self.nodes)} nodes")
        return self

    def url(self, scheme: str = "rabbit", vhost: str = "") -> str:
        """A transport URL listing every node, in order."""
        return f"{scheme}://{','.join(node.address() for node in self.nodes)}/{vhost}"

    def node_named(self, nodename: str) -> PrivateRabbit:
        return next(node for node in self.nodes if node.nodename == nodename)

    def leader_of(self, queue: str, vhost: str = "/") -> PrivateRabbit:
        """The node that leads quorum ``queue`` now (asked of a running node).

        :raises LookupError: no running node knows a leader for it.
        """
        for node in self.nodes:
            if not node.accepts_connections():
                continue
            out = node.rabbitmqctl("list_queues", "-q", "--no-table-headers", "-p", vhost,
                                   "name", "leader")
            for line in out.splitlines():
                name, _, leader = line.partition("\t")
                if name == queue and leader.strip():
                    return self.node_named(leader.strip())
        raise LookupError(f"no leader known for {queue}")

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def __enter__(self) -> PrivateCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
