"""What queues a broker holds, as ``rabbitmqctl list_queues`` shows them, and
removing a test run's own queues and exchanges afterwards.

Used by the rabbit and qpid suites to check the queue layout: no queue may
be both non-durable and non-exclusive (RabbitMQ 4.3 refuses such queues by
default: deprecated feature ``transient_nonexcl_queues``).

Usage::

    admin = admin_for("rabbit://guest:guest@127.0.0.1:5672/")   # the machine's node
    admin = BrokerAdmin(node.url(), node.rabbitmqctl_command())  # a private node
    bad = [q for q in admin.list_queues() if transient_shared(q)]
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import amqp


@dataclass(frozen=True)
class Queue:
    """One row of ``rabbitmqctl list_queues``."""

    name: str
    type: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: str  # as rabbitmqctl prints it, e.g. [{"x-expires",3600000}]


def transient_shared(queue: Queue) -> bool:
    """Non-durable and non-exclusive: what RabbitMQ 4.3 refuses by default."""
    return not queue.durable and not queue.exclusive


class BrokerAdmin:
    """``rabbitmqctl`` (as ``ctl``, a command list) and an AMQP 0-9-1
    connection (py-amqp, test-side only) to one broker."""

    def __init__(self, url: str, ctl: list[str]) -> None:
        parts = urlsplit(url)
        first = parts.netloc.split(",")[0]
        credentials, _, address = first.rpartition("@")
        user, _, password = credentials.partition(":")
        host, _, port = address.partition(":")
        self.address = f"{host}:{port or 5672}"
        self.user = unquote(user) or "guest"
        self.password = unquote(password) or "guest"
        self.vhost = unquote(parts.path[1:]) or "/"
        self.ctl = ctl

    def list_queues(self) -> list[Queue]:
        """Every queue of the vhost.

        :raises subprocess.CalledProcessError: rabbitmqctl failed.
        """
        out = subprocess.run(
            [*self.ctl, "list_queues", "-q", "--no-table-headers", "-p", self.vhost, "name",
             "type", "durable", "exclusive", "auto_delete", "arguments"],
            capture_output=True, text=True, timeout=60, check=True).stdout
        queues = []
        for line in out.splitlines():
            fields = line.split("\t")
            if len(fields) != 6:
                continue
            name, kind, durable, exclusive, auto_delete, arguments = fields
            queues.append(Queue(name, kind, durable == "true", exclusive == "true",
                                auto_delete == "true", arguments))
        return queues

    def delete(self, queues: list[str], exchanges: list[str]) -> None:
        """Delete the named queues and exchanges (a test's own, when it ends)."""
        with amqp.Connection(self.address, userid=self.user, password=self.password,
                             virtual_host=self.vhost) as conn:
            channel = conn.channel()
            for name in queues:
                channel.queue_delete(name)
            for name in exchanges:
                channel.exchange_delete(name)


def admin_for(url: str) -> BrokerAdmin:
    """The admin of the machine's own broker at ``url`` (``rabbitmqctl``)."""
    return BrokerAdmin(url, ["rabbitmqctl"])
