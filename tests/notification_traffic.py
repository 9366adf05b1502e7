"""Load for the fault tests of brokered notifications (rabbit, qpid on
RabbitMQ 4): a thread sending confirmed notifications and keeping what the
broker confirmed, and what a recorder received."""

from __future__ import annotations

import threading
import time

from rpccore import RPC
from rpccore.errors import TransportError
from rpccore.testing import NotificationRecorder


class Notifying(threading.Thread):
    """Sends confirmed notifications numbered 0, 1, 2... until told to stop;
    keeps the numbers the broker confirmed."""

    def __init__(self, rpc: RPC, topic: str) -> None:
        super().__init__(daemon=True)
        self.notifier = rpc.notifier("faults.pub", topics=[topic])
        self.confirmed: set[int] = set()
        self.failed = 0
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            try:
                self.notifier.info({}, "faults.event", {"n": n}, confirm=True)
                self.confirmed.add(n)
            except TransportError:
                self.failed += 1  # not confirmed: may or may not arrive
                time.sleep(0.05)
            n += 1


def received_numbers(recorder: NotificationRecorder) -> list[int]:
    """The numbers of the notifications ``recorder`` received, in order."""
    return [n.payload["n"] for n in recorder.notifications]
