"""Fanout to three receivers with no RPC layer: bare threads, raw kombu, raw pyzmq.

Each measures ``n`` messages published once and received by every one of the
receivers; the rate counts until the last receiver has its ``n``th message.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from typing import Any

from benchmarks.measure import Measured, drain_until
from benchmarks.suite.endpoint import Counter

BODY = {"method": "note", "args": {"payload": "x" * 100}}


def bare_fanout(n: int, receivers: int = 3) -> Measured:
    """JSON encoded once, put on one queue per receiving thread."""
    queues: list[queue.Queue[bytes | None]] = [queue.Queue() for _ in range(receivers)]

    def worker(q: queue.Queue[bytes | None]) -> None:
        while (item := q.get()) is not None:
            json.loads(item)

    threads = [threading.Thread(target=worker, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i in range(n):
        body = json.dumps({**BODY, "i": i}).encode()
        for q in queues:
            q.put(body)
    for q in queues:
        q.put(None)
    for t in threads:
        t.join()
    return n / (time.perf_counter() - start), []


class KombuFanout:
    """A fanout exchange with one auto-delete queue per receiver, each on its own connection."""

    def __init__(self, url: str, receivers: int = 3) -> None:
        import kombu
        self.kombu = kombu
        self.url = url
        self.exchange = kombu.Exchange(f"bench-fan-{uuid.uuid4().hex}", type="fanout",
                                       auto_delete=True)
        self.counters = [Counter() for _ in range(receivers)]
        self.sent = 0
        self.stop = threading.Event()
        ready = [threading.Event() for _ in range(receivers)]
        self.threads = [threading.Thread(target=self._receive, args=(c, r), daemon=True)
                        for c, r in zip(self.counters, ready, strict=True)]
        for t in self.threads:
            t.start()
        for r in ready:
            if not r.wait(10):
                raise TimeoutError("kombu fanout receiver did not start")
        self.conn = kombu.Connection(url)
        self.producer = kombu.Producer(self.conn.channel(), exchange=self.exchange)

    def _receive(self, counter: Counter, ready: threading.Event) -> None:
        kombu = self.kombu
        with kombu.Connection(self.url) as conn:
            q = kombu.Queue(f"bench-fanq-{uuid.uuid4().hex}", self.exchange, auto_delete=True)

            def on_message(body: Any, message: Any) -> None:
                counter.hit()
                message.ack()

            with kombu.Consumer(conn, [q], callbacks=[on_message], prefetch_count=64):
                ready.set()
                drain_until(conn, self.stop)

    def run(self, n: int) -> Measured:
        start = time.perf_counter()
        for i in range(n):
            self.producer.publish({**BODY, "i": i})
        self.sent += n
        for counter in self.counters:
            counter.wait_for(self.sent)
        return n / (time.perf_counter() - start), []

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.conn.release()


class ZmqFanout:
    """PUB bound on loopback, one SUB per receiving thread (no high-water-mark drops)."""

    def __init__(self, receivers: int = 3) -> None:
        import zmq
        self.zmq = zmq
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 0)
        port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.counters = [Counter() for _ in range(receivers)]
        self.joined = [threading.Event() for _ in range(receivers)]
        self.threads = [threading.Thread(target=self._receive, args=(port, c, j), daemon=True)
                        for c, j in zip(self.counters, self.joined, strict=True)]
        for t in self.threads:
            t.start()
        deadline = time.monotonic() + 10
        while not all(j.is_set() for j in self.joined):  # slow joiners: say hello until heard
            if time.monotonic() > deadline:
                raise TimeoutError("zmq fanout receivers did not join")
            self.pub.send(b"hello")
            time.sleep(0.01)
        self.sent = 0

    def _receive(self, port: int, counter: Counter, joined: threading.Event) -> None:
        zmq = self.zmq
        sub = self.ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(f"tcp://127.0.0.1:{port}")
        while True:
            msg = sub.recv()
            if msg == b"hello":
                joined.set()
            elif msg == b"quit":
                break
            else:
                json.loads(msg)
                counter.hit()
        sub.close(linger=0)

    def run(self, n: int) -> Measured:
        start = time.perf_counter()
        for i in range(n):
            self.pub.send(json.dumps({**BODY, "i": i}).encode())
        self.sent += n
        for counter in self.counters:
            counter.wait_for(self.sent)
        return n / (time.perf_counter() - start), []

    def close(self) -> None:
        self.pub.send(b"quit")
        for t in self.threads:
            t.join(5)
        self.pub.close(linger=0)
        self.ctx.term()
