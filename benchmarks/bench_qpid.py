"""Benchmark: rpccore's qpid driver against raw proton Container code, in one run.

Same broker (RabbitMQ's AMQP 1.0 plugin), interleaved, median of the
repeats, 100-byte messages / arguments:

- raw: one proton Container, broker-acknowledged sends to ``/queue/NAME``
  and a receiver (prefetch 500) on the same queue; the rate counts until
  every message has been received;
- rpccore casts: one thread casts N messages to a server in the same
  process; the rate counts until the server has run all of them
  (target: >= 50% of raw);
- sequential calls and calls from 8 threads, with p50/p99 latency.

    python3 benchmarks/bench_qpid.py [--url qpid://guest:guest@127.0.0.1:5672/]
        [--casts 10000] [--calls 2000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.measure import interleave, report  # noqa: E402
from rpccore import RPC  # noqa: E402
from rpccore.testing import single_cell_rpc  # noqa: E402
from rpccore_qpid import addressing  # noqa: E402

PAYLOAD = "x" * 100


_made: list[str] = []   # queues to delete at the end


def delete_queues(url: str, names: list[str]) -> None:
    """Delete the queues the benchmark made (over AMQP 0-9-1: AMQP 1.0 on
    RabbitMQ 3.10 cannot delete queues); best effort."""
    try:
        import amqp

        parts = urlsplit(url)
        with amqp.Connection(f"{parts.hostname}:{parts.port or 5672}", userid=parts.username,
                             password=parts.password) as conn:
            channel = conn.channel()
            for name in names:
                channel.queue_delete(name)
    except Exception as exc:  # the figures are still good
        print(f"(could not delete the benchmark's queues: {exc})")


def raw_proton_casts(url: str, n: int) -> tuple[float, list[float]]:
    """Plain proton: send ``n`` 100-byte messages and receive them back."""
    from proton import Message
    from proton.handlers import MessagingHandler
    from proton.reactor import Container

    parts = urlsplit(url)
    queue = f"bench-raw-{os.urandom(4).hex()}"
    _made.append(queue)
    address = f"/queue/{queue}"
    body = PAYLOAD.encode()
    times = {"start": 0.0, "end": 0.0}

    class Handler(MessagingHandler):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(prefetch=500)
            self.sent = self.received = 0

        def on_start(self, event: Any) -> None:
            conn = event.container.connect(
                url=f"amqp://{parts.hostname}:{parts.port or 5672}", allowed_mechs="PLAIN",
                user=parts.username, password=parts.password)
            self.receiver = event.container.create_receiver(conn, address)
            self.sender = None

        def on_link_opened(self, event: Any) -> None:
            if event.link.is_receiver and self.sender is None:
                self.sender = event.container.create_sender(event.connection, address)

        def on_sendable(self, event: Any) -> None:
            if not times["start"]:
                times["start"] = time.perf_counter()
            while event.sender.credit and self.sent < n:
                event.sender.send(Message(body=body))
                self.sent += 1

        def on_message(self, event: Any) -> None:
            self.received += 1
            if self.received == n:
                times["end"] = time.perf_counter()
                event.connection.close()

    Container(Handler()).run()
    return n / (times["end"] - times["start"]), []


class Endpoint:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.target = -1
        self.done = threading.Event()

    def expect(self, n: int) -> None:
        with self.lock:
            self.count, self.target = 0, n
            self.done.clear()

    def note(self, ctx: dict[str, Any], i: int, payload: str) -> None:
        with self.lock:
            self.count += 1
            if self.count == self.target:
                self.done.set()

    def work(self, ctx: dict[str, Any], i: int, payload: str) -> int:
        return i


class RpccoreQpid:
    """A server and a client (two RPC objects, two connections) kept for every trial."""

    def __init__(self, url: str) -> None:
        namespace = f"bench-{os.urandom(4).hex()}"
        _made.append(addressing.work_queue(namespace, "bench"))
        self.server, self.client = (self._rpc(url, namespace) for _ in range(2))
        self.endpoint = Endpoint()
        self.server.serve("bench", [self.endpoint]).start()
        self.client.call({}, "bench", {"method": "work", "args": {"i": 0, "payload": ""}})

    @staticmethod
    def _rpc(url: str, namespace: str) -> RPC:
        return single_cell_rpc(url, control_exchange=namespace)

    def casts(self, n: int) -> tuple[float, list[float]]:
        self.endpoint.expect(n)
        start = time.perf_counter()
        for i in range(n):
            self.client.cast({}, "bench", {"method": "note", "args": {"i": i, "payload": PAYLOAD}})
        if not self.endpoint.done.wait(120):
            raise RuntimeError(f"only {self.endpoint.count} of {n} casts arrived")
        return n / (time.perf_counter() - start), []

    def calls(self, n: int, threads: int = 1) -> tuple[float, list[float]]:
        latencies: list[float] = []
        per = n // threads

        def caller() -> None:
            own = []
            for i in range(per):
                t0 = time.perf_counter()
                self.client.call({}, "bench", {"method": "work",
                                               "args": {"i": i, "payload": PAYLOAD}})
                own.append(time.perf_counter() - t0)
            latencies.extend(own)

        workers = [threading.Thread(target=caller) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return per * threads / (time.perf_counter() - start), latencies

    def close(self) -> None:
        self.client.close()
        self.server.close()


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="qpid://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--casts", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer messages (CI guard)")
    args = parser.parse_args(argv)
    casts, calls = (2000, 400) if args.quick else (args.casts, args.calls)
    print(f"qpid driver (AMQP 1.0 on {urlsplit(args.url).hostname}), 100-byte payloads, "
          f"median of {args.repeats} interleaved repeats ({casts} casts, {calls} calls each)")
    bench = RpccoreQpid(args.url)
    try:
        r = interleave([("raw proton", lambda: raw_proton_casts(args.url, casts)),
                        ("rpccore casts", lambda: bench.casts(casts)),
                        ("rpccore calls", lambda: bench.calls(calls)),
                        ("rpccore calls, 8 threads", lambda: bench.calls(calls, 8))],
                       repeats=args.repeats)
    finally:
        bench.close()
        delete_queues(args.url, _made)
    return [report("raw proton Container: send + receive", r["raw proton"]),
            report("qpid: casts, 1 thread", r["rpccore casts"], r["raw proton"], 0.50),
            report("qpid: sequential calls", r["rpccore calls"]),
            report("qpid: calls from 8 threads", r["rpccore calls, 8 threads"])]


if __name__ == "__main__":
    main()
