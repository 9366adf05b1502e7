"""A private RabbitMQ 4 node, from Debian 13's packages, beside the machine's
RabbitMQ 3.10: the node runs chroot'ed in the Debian root that
``.ci/prepare-rabbitmq4`` builds (once; later runs reuse it) in
``RPCCORE_RABBITMQ4_ROOT`` (default ``/var/cache/rpccore-rabbitmq4``).

Everything of :class:`~private_rabbit.PrivateRabbit` applies (own ports, own
epmd, kill, pause, restart, stop); the node's folder lives inside the root,
and every RabbitMQ process runs in a mount namespace of its own where the
root's ``/proc`` is mounted (Erlang reads it), so nothing stays mounted
after the node ends. The node is configured as RabbitMQ 4.3 behaves by
default, and stricter:

- ``deprecated_features.permit.transient_nonexcl_queues = false``: a queue
  both non-durable and non-exclusive is refused (541);
- ``deprecated_features.permit.global_qos = false``;
- ``deprecated_features.permit.amqp_address_v1 = false``: AMQP 1.0 clients
  must use v2 addresses (``/queues/NAME``, ``/exchanges/NAME/KEY``).

Needs root (chroot, mount). A missing root fails loudly (FileNotFoundError
naming the script that builds it); tests never skip.
"""

from __future__ import annotations

import os
from pathlib import Path

from private_rabbit import PrivateRabbit

ROOT = Path(os.environ.get("RPCCORE_RABBITMQ4_ROOT", "/var/cache/rpccore-rabbitmq4"))

RABBITMQ4_CONFIG = ("deprecated_features.permit.transient_nonexcl_queues = false\n"
                    "deprecated_features.permit.global_qos = false\n"
                    "deprecated_features.permit.amqp_address_v1 = false\n")


class PrivateRabbit4(PrivateRabbit):
    """One private RabbitMQ 4 node (see the module docstring)."""

    def __init__(self, *, epmd_port: int | None = None, cookie: str | None = None,
                 config: str = "") -> None:
        # AMQP 1.0 is part of RabbitMQ 4: no plugin to enable
        super().__init__(plugins=(), epmd_port=epmd_port, cookie=cookie,
                         config=RABBITMQ4_CONFIG + config)

    def _temp_root(self) -> str:
        tmp = ROOT / "tmp"
        if not tmp.is_dir():
            raise FileNotFoundError(f"no RabbitMQ 4 root at {ROOT}: build it with "
                                    "'sudo .ci/prepare-rabbitmq4' (CI does, in "
                                    ".ci/prepare-backends)")
        return str(tmp)

    def inner(self, path: Path) -> str:
        return "/" + str(path.relative_to(ROOT))

    def command(self, program: str) -> list[str]:
        script = (f'mount -t proc proc "{ROOT}/proc" && exec chroot "{ROOT}" '
                  f'{self.bin_dir}/{program} "$@"')
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                program]

    def _check_installed(self) -> None:
        if not (ROOT / ".rpccore-ready").exists():
            raise FileNotFoundError(f"no RabbitMQ 4 root at {ROOT}: build it with "
                                    "'sudo .ci/prepare-rabbitmq4'")

    def version(self) -> str:
        """The RabbitMQ version of the root (Debian's package version)."""
        return (ROOT / ".rpccore-ready").read_text().strip()
