"""rpccore through its public API, the same for every driver.

The server's endpoint returns its argument (calls) or counts messages
(casts); a cast rate counts until the server has received every message, so
it measures publish *and* consume, as the peers' figures do.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.measure import Measured, timed_calls  # noqa: F401 (re-exported)
from benchmarks.suite.cells import CellFactory
from benchmarks.suite.endpoint import Counter, Endpoint
from rpccore import RPC


class RpccoreWorkload:
    """A client and servers of one driver; each method is one timed trial."""

    def __init__(self, factory: CellFactory, fanout_servers: int = 3) -> None:
        self.factory = factory
        self.rpcs: list[RPC] = []
        self.client = self._rpc(None)
        self.counter = Counter()
        self._serve("bench", self.factory.hosts("bench", 1)[0], self.counter)
        self.fan_counters = [Counter() for _ in range(fanout_servers)]
        fan_hosts = self.factory.hosts("fan", fanout_servers)
        for host, counter in zip(fan_hosts, self.fan_counters, strict=True):
            self._serve("fan", host, counter)
        self.sent = 0
        self.fan_sent = 0
        self._notifications: Any = None  # set up by the first notifications trial
        self._aio: Any = None  # set up by the first asyncio trial
        self.call(0, 100)  # connect before anything is timed

    def _rpc(self, host: str | None) -> RPC:
        rpc = self.factory.rpc(host)
        self.rpcs.append(rpc)
        return rpc

    def _serve(self, topic: str, host: str | None, counter: Counter) -> None:
        rpc = self._rpc(host)
        rpc.serve(topic, [Endpoint(counter)]).start()

    def call(self, i: int, size: int, topic: str = "bench") -> Any:
        message = {"method": "work", "args": {"i": i, "payload": "x" * size}}
        return self.client.call({}, topic, message, timeout=60)

    def calls(self, n: int, threads: int = 1, size: int = 100,
              version: str | None = None) -> Measured:
        """``version``: every message carries it (a versioned call), else none does."""
        payload = "x" * size
        msg_args = {"payload": payload}
        extra = {} if version is None else {"version": version}

        def one(i: int) -> Any:
            return self.client.call({}, "bench", {"method": "work", "args": dict(msg_args, i=i),
                                                  **extra}, timeout=60)
        return timed_calls(one, n, threads)

    def casts(self, n: int, size: int = 100) -> Measured:
        payload = "x" * size
        start = time.perf_counter()
        for i in range(n):
            self.client.cast({}, "bench", {"method": "note", "args": {"i": i, "payload": payload}})
        self.sent += n
        self.counter.wait_for(self.sent)
        return n / (time.perf_counter() - start), []

    def stream(self, n: int, size: int = 100) -> Measured:
        """One ``rpc.stream`` of ``n`` items; the rate counts items read."""
        message = {"method": "items", "args": {"n": n, "payload": "x" * size}}
        start = time.perf_counter()
        read = sum(1 for _ in self.client.stream({}, "bench", message, timeout=60))
        if read != n:
            raise RuntimeError(f"the stream ended after {read} of {n} items")
        return n / (time.perf_counter() - start), []

    def fanout(self, n: int) -> Measured:
        """``n`` fanout casts; the rate counts until every server has all of them."""
        dest = self.client.make_destination("fan", fanout=True)
        start = time.perf_counter()
        for i in range(n):
            self.client.cast({}, dest, {"method": "note", "args": {"i": i, "payload": "x" * 100}})
        self.fan_sent += n
        for counter in self.fan_counters:
            counter.wait_for(self.fan_sent)
        return n / (time.perf_counter() - start), []

    def notifications(self, n: int, size: int = 100) -> Measured:
        """``n`` notifications; the rate counts until the listener has them all
        (see :mod:`benchmarks.suite.notifications`)."""
        from benchmarks.suite.notifications import RpccoreNotifications
        if self._notifications is None:
            self._notifications = RpccoreNotifications(self.factory, self._rpc)
        return self._notifications.run(n, size)

    def acalls(self, n: int, concurrency: int, size: int = 100) -> Measured:
        """``n`` calls through ``rpccore.aio`` (over this client), ``concurrency``
        in flight at a time, to the same server as :meth:`calls`."""
        if self._aio is None:
            from benchmarks.suite.aio_workload import AioRpccore
            self._aio = AioRpccore(self.client)
        return self._aio.calls(n, concurrency, size)

    def close(self) -> None:
        if self._aio is not None:
            self._aio.close()
        for rpc in reversed(self.rpcs):
            rpc.close()


class RemoteServerWorkload:
    """A client here, the server in another process (see :mod:`benchmarks.suite.child`)."""

    def __init__(self, factory: CellFactory) -> None:
        self.client = factory.rpc(None)
        self.sent = 0
        self.client.call({}, "xproc", {"method": "work", "args": {"i": 0, "payload": ""}},
                         timeout=60)

    def calls(self, n: int, threads: int = 1, size: int = 100, topic: str = "xproc") -> Measured:
        """``topic`` "xproc-inline" is the same endpoint served with workers=0."""
        payload = "x" * size
        return timed_calls(lambda i: self.client.call(
            {}, topic, {"method": "work", "args": {"i": i, "payload": payload}}, timeout=60),
            n, threads)

    def casts(self, n: int, size: int = 100) -> Measured:
        payload = "x" * size
        start = time.perf_counter()
        for i in range(n):
            self.client.cast({}, "xproc", {"method": "note", "args": {"i": i, "payload": payload}})
        self.sent += n
        self.client.call({}, "xproc", {"method": "wait_count", "args": {"n": self.sent}},
                         timeout=90)
        return n / (time.perf_counter() - start), []

    def close(self) -> None:
        self.client.close()
