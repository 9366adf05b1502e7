"""Benchmark: rpccore's rabbit driver against raw kombu and oslo.messaging.

Same broker, same run, interleaved, median of 3 rounds, 100-byte arguments:

- casts: one thread casts N messages; the rate counts until a server in the
  same process has received all of them (publish and consume);
- sequential calls: one thread, one call at a time (p50/p99 latency too);
- 8-thread calls: eight threads calling at once (p50/p99 latency too).

oslo.messaging is optional: install it (only for this benchmark, ideally in a
virtualenv with ``--system-site-packages``) and it is measured too.

    python3 benchmarks/bench_rabbit.py [--url amqp://guest:guest@127.0.0.1:5672/]
        [--casts 5000] [--calls 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.measure import drain_until, timed_calls  # noqa: E402

ARG = "x" * 100


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.target = -1
        self.done = threading.Event()
        self.lock = threading.Lock()

    def expect(self, target: int) -> None:
        with self.lock:
            self.n = 0
            self.target = target
            self.done.clear()

    def hit(self) -> None:
        with self.lock:
            self.n += 1
            if self.n == self.target:
                self.done.set()


class Endpoint:
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def note(self, ctx: Any, value: str) -> None:
        self.counter.hit()

    def echo(self, ctx: Any, value: str) -> str:
        return value


def _calls(call: Callable[[], Any], n: int, threads: int) -> tuple[float, list[float]]:
    """Rate (calls/s) and latencies (s) of ``n`` calls spread over ``threads``."""
    return timed_calls(lambda _i: call(), n, threads)


class RpccoreRabbit:
    name = "rpccore"
    #: rabbit_queue_type of the work queue (--queue-type)
    queue_type = "classic"

    def __init__(self, url: str) -> None:
        from oslo_config import cfg

        from rpccore import RPC

        self.url = url.replace("amqp://", "rabbit://", 1)
        self.exchange = exchange = f"bench-{os.urandom(4).hex()}"
        self.counter = Counter()
        self.server = RPC(cfg.ConfigOpts())
        self.server.add_cell("b", self.url, control_exchange=exchange,
                             rabbit_queue_type=self.queue_type)
        self.client = RPC(cfg.ConfigOpts())
        self.client.add_cell("b", self.url, control_exchange=exchange,
                             rabbit_queue_type=self.queue_type)
        self.dest = self.client.make_destination("bench", cell="b")
        self.server.serve(self.dest, [Endpoint(self.counter)]).start()

    def casts(self, n: int) -> float:
        self.counter.expect(n)
        msg = {"method": "note", "args": {"value": ARG}}
        start = time.perf_counter()
        for _ in range(n):
            self.client.cast({}, self.dest, msg)
        assert self.counter.done.wait(300)
        return n / (time.perf_counter() - start)

    def call(self) -> Any:
        return self.client.call({}, self.dest, {"method": "echo", "args": {"value": ARG}},
                                timeout=30)

    def close(self) -> None:
        self.client.close()
        self.server.close()
        # the work queue is durable (it outlives its servers): remove this run's
        import kombu

        from rpccore_rabbit.addressing import queue_name, work_key

        with kombu.Connection(self.url.replace("rabbit://", "amqp://", 1)) as conn:
            conn.channel().queue_delete(queue_name(self.exchange, work_key("bench")))


class RawKombu:
    """The floor: kombu publish/consume with nothing around it."""

    name = "kombu"

    def __init__(self, url: str) -> None:
        import kombu

        self.kombu = kombu
        self.url = url
        self.queue = f"bench-kombu-{uuid.uuid4().hex}"
        self.counter = Counter()
        self.stop = threading.Event()
        ready = threading.Event()
        self.server = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self.server.start()
        assert ready.wait(10)
        self.local = threading.local()

    def _serve(self, ready: threading.Event) -> None:
        kombu = self.kombu
        with kombu.Connection(self.url) as conn:
            queue = kombu.Queue(self.queue, auto_delete=True)
            producer = kombu.Producer(conn.channel())

            def on_message(body: Any, message: Any) -> None:
                reply_to = message.properties.get("reply_to")
                if reply_to:
                    producer.publish(body, routing_key=reply_to,
                                     correlation_id=message.properties.get("correlation_id"))
                else:
                    self.counter.hit()
                message.ack()

            with kombu.Consumer(conn, [queue], callbacks=[on_message], prefetch_count=64):
                ready.set()
                drain_until(conn, self.stop)

    def casts(self, n: int) -> float:
        self.counter.expect(n)
        with self.kombu.Connection(self.url) as conn:
            producer = self.kombu.Producer(conn.channel())
            start = time.perf_counter()
            for _ in range(n):
                producer.publish({"value": ARG}, routing_key=self.queue)
            assert self.counter.done.wait(300)
            return n / (time.perf_counter() - start)

    def call(self) -> Any:
        state = getattr(self.local, "state", None)
        if state is None:
            kombu = self.kombu
            conn = kombu.Connection(self.url)
            reply = kombu.Queue(f"bench-reply-{uuid.uuid4().hex}", exclusive=True,
                                auto_delete=True)
            got: list[Any] = []
            consumer = kombu.Consumer(conn, [reply], no_ack=True,
                                      callbacks=[lambda body, m: got.append(body)])
            consumer.consume()
            state = self.local.state = (conn, kombu.Producer(conn.channel()), reply.name, got)
        conn, producer, reply_name, got = state
        producer.publish({"value": ARG}, routing_key=self.queue, reply_to=reply_name,
                         correlation_id=uuid.uuid4().hex)
        while not got:
            conn.drain_events(timeout=30)
        return got.pop()

    def close(self) -> None:
        self.stop.set()
        self.server.join(5)


class OsloMessaging:
    name = "oslo"

    def __init__(self, url: str) -> None:
        warnings.simplefilter("ignore")
        import oslo_messaging
        from oslo_config import cfg

        self.url = url.replace("amqp://", "rabbit://", 1)
        # oslo.messaging 18 registers some of its options on cfg.CONF only.
        self.conf = cfg.CONF
        if not getattr(OsloMessaging, "_parsed", False):
            self.conf([], project="bench")
            OsloMessaging._parsed = True
        self.transport = oslo_messaging.get_rpc_transport(self.conf, url=self.url)
        topic = self.topic = f"bench-oslo-{uuid.uuid4().hex}"
        target = oslo_messaging.Target(topic=topic, server="s1")
        self.counter = Counter()
        self.server = oslo_messaging.get_rpc_server(
            self.transport, target, [Endpoint(self.counter)], executor="threading")
        self.server.start()
        self.client = oslo_messaging.get_rpc_client(
            self.transport, oslo_messaging.Target(topic=topic), timeout=30)
        # the server's queues exist once it answers
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.prepare(timeout=2).call({}, "echo", value="x")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise

    def casts(self, n: int) -> float:
        self.counter.expect(n)
        start = time.perf_counter()
        for _ in range(n):
            self.client.cast({}, "note", value=ARG)
        assert self.counter.done.wait(300)
        return n / (time.perf_counter() - start)

    def call(self) -> Any:
        return self.client.call({}, "echo", value=ARG)

    def close(self) -> None:
        self.server.stop()
        self.server.wait()
        self.transport.cleanup()
        # oslo.messaging leaves its topic queues behind: remove this run's.
        import kombu

        with kombu.Connection(self.url.replace("rabbit://", "amqp://", 1)) as conn:
            channel = conn.channel()
            for name in (self.topic, f"{self.topic}.s1"):
                channel.queue_delete(name)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--casts", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue-type", choices=["classic", "quorum"], default="classic",
                        help="rabbit_queue_type of rpccore's queues")
    args = parser.parse_args()
    RpccoreRabbit.queue_type = args.queue_type

    impls: list[type] = [RpccoreRabbit, RawKombu]
    try:
        import oslo_messaging  # noqa: F401
        impls.append(OsloMessaging)
    except ImportError:
        print("oslo.messaging is not installed: comparing with raw kombu only")

    results: dict[tuple[str, str], list[float]] = {}
    latencies: dict[tuple[str, str], list[float]] = {}
    for round_no in range(args.rounds):
        for impl in impls:
            bench = impl(args.url)
            try:
                bench.call()  # warm up: connections, queues
                results.setdefault((impl.name, "casts"), []).append(bench.casts(args.casts))
                rate, lat = _calls(bench.call, args.calls, 1)
                results.setdefault((impl.name, "calls"), []).append(rate)
                latencies.setdefault((impl.name, "calls"), []).extend(lat)
                rate, lat = _calls(bench.call, args.calls * 2, 8)
                results.setdefault((impl.name, "calls8"), []).append(rate)
                latencies.setdefault((impl.name, "calls8"), []).extend(lat)
            finally:
                bench.close()
        print(f"round {round_no + 1}/{args.rounds} done", flush=True)

    labels = {"casts": "casts/s (1 thread)", "calls": "calls/s (sequential)",
              "calls8": "calls/s (8 threads)"}
    names = [impl.name for impl in impls]
    print(f"\n{'':24}" + "".join(f"{n:>12}" for n in names)
          + "".join(f"{'vs ' + n:>12}" for n in names[1:]))
    for key, label in labels.items():
        medians = {n: statistics.median(results[(n, key)]) for n in names}
        line = f"{label:24}" + "".join(f"{medians[n]:12.0f}" for n in names)
        line += "".join(f"{medians['rpccore'] / medians[n]:11.2f}x" for n in names[1:])
        print(line)
    for key in ("calls", "calls8"):
        for n in names:
            lat = latencies[(n, key)]
            print(f"{n:8} {labels[key]:22} latency p50 {_percentile(lat, 0.5) * 1000:7.2f} ms"
                  f"  p99 {_percentile(lat, 0.99) * 1000:7.2f} ms")


if __name__ == "__main__":
    main()
