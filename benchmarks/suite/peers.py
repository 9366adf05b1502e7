"""The peers rpccore is measured against, behind one small interface.

The raw clients come from the focused benchmark scripts where those have
them (``benchmarks/bench_memory.py``, ``bench_rabbit.py``, ``bench_zmq.py``,
``bench_qpid.py``, ``bench_nats.py``);
this module only adapts them. What they lack (fanout, raw proton) lives in
:mod:`.raw_fanout` and :mod:`.raw_proton`.

The scripts use a module-level payload (``PAYLOAD``, ``ARG``, ``RAW_BODY``):
:func:`payload` sets it for the length of one trial so the payload scenarios
can reuse them.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from benchmarks.suite.aio_workload import ACALLS, aio_pika_version
from benchmarks.suite.cells import NATS_URL, QPID_URL, RABBIT_URL, free_port
from benchmarks.suite.workload import Measured, timed_calls

CASTS, CALLS, THREADS, FANOUT = "casts", "calls", "threads", "fanout"
NOTIFY = "notifications"  # benchmarks.suite.notifications
#: items of one streamed reply (rpccore only: no peer streams)
STREAM = "stream"


@contextlib.contextmanager
def payload(module: ModuleType, name: str, value: Any) -> Iterator[None]:
    """Set ``module.name`` to ``value`` for the duration of a trial."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


class Peer:
    """A peer: same work, no rpccore. ``supports`` says which trials it has."""

    name = "peer"
    supports: frozenset[str] = frozenset()
    remote_server = False  # its server runs in another process

    def casts(self, n: int, size: int = 100) -> Measured:
        raise NotImplementedError

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        raise NotImplementedError

    def fanout(self, n: int) -> Measured:
        raise NotImplementedError

    def notifications(self, n: int, size: int = 100) -> Measured:
        raise NotImplementedError

    def acalls(self, n: int, concurrency: int, size: int = 100) -> Measured:
        """``n`` asyncio calls, ``concurrency`` in flight at a time."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class BarePeer(Peer):
    """bench_memory's bare baseline: JSON through a queue to a thread (and back)."""

    name = "bare queue+thread"
    supports = frozenset({CASTS, CALLS, FANOUT, NOTIFY})

    def __init__(self) -> None:
        from benchmarks import bench_memory
        self.mod = bench_memory

    def casts(self, n: int, size: int = 100) -> Measured:
        with payload(self.mod, "PAYLOAD", "x" * size):
            return self.mod.bare_oneway(n)

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        with payload(self.mod, "PAYLOAD", "x" * size):
            return self.mod.bare_roundtrip(n)

    def fanout(self, n: int) -> Measured:
        from benchmarks.suite.raw_fanout import bare_fanout
        return bare_fanout(n)

    def notifications(self, n: int, size: int = 100) -> Measured:
        return self.casts(n, size)  # the same one-way work, with no RPC layer


class KombuPeer(Peer):
    """bench_rabbit's raw kombu publish/consume and round trip."""

    name = "raw kombu"
    supports = frozenset({CASTS, CALLS, THREADS, FANOUT})

    def __init__(self) -> None:
        from benchmarks import bench_rabbit
        self.mod = bench_rabbit
        self.url = RABBIT_URL.replace("rabbit://", "amqp://", 1)
        self.raw = bench_rabbit.RawKombu(self.url)
        self.raw.call()
        self._fan: Any = None

    def casts(self, n: int, size: int = 100) -> Measured:
        with payload(self.mod, "ARG", "x" * size):
            return self.raw.casts(n), []

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        with payload(self.mod, "ARG", "x" * size):
            return timed_calls(lambda i: self.raw.call(), n, threads)

    def fanout(self, n: int) -> Measured:
        from benchmarks.suite.raw_fanout import KombuFanout
        if self._fan is None:
            self._fan = KombuFanout(self.url)
        return self._fan.run(n)

    def close(self) -> None:
        self.raw.close()
        if self._fan is not None:
            self._fan.close()


class OsloPeer(Peer):
    """bench_rabbit's oslo.messaging client and threading server."""

    name = "oslo.messaging"
    # notifications: its Notifier and notification listener, set up on the
    # first such trial (the scenario runs once rpccore's rabbit driver
    # carries notifications)
    supports = frozenset({CASTS, CALLS, THREADS, NOTIFY})

    def __init__(self) -> None:
        from benchmarks import bench_rabbit
        self.mod = bench_rabbit
        self.oslo = bench_rabbit.OsloMessaging(RABBIT_URL.replace("rabbit://", "amqp://", 1))
        self._notify: Any = None

    def casts(self, n: int, size: int = 100) -> Measured:
        with payload(self.mod, "ARG", "x" * size):
            return self.oslo.casts(n), []

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        with payload(self.mod, "ARG", "x" * size):
            return timed_calls(lambda i: self.oslo.call(), n, threads)

    def notifications(self, n: int, size: int = 100) -> Measured:
        if self._notify is None:
            from benchmarks.suite.notifications import OsloNotifications
            self._notify = OsloNotifications(RABBIT_URL.replace("rabbit://", "amqp://", 1))
        measured: Measured = self._notify.run(n, size)
        return measured

    def close(self) -> None:
        self.oslo.close()
        if self._notify is not None:
            self._notify.close()


def oslo_version() -> str | None:
    """The installed oslo.messaging version, or ``None`` if it cannot be imported."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import oslo_messaging  # noqa: F401
        from importlib.metadata import version
        return version("oslo.messaging")
    except Exception:
        return None


class PyzmqPeer(Peer):
    """bench_zmq's raw REQ/REP and PUSH/PULL, server in a separate process."""

    name = "raw pyzmq"
    supports = frozenset({CASTS, CALLS, FANOUT})
    remote_server = True

    def __init__(self) -> None:
        from benchmarks import bench_zmq
        self.mod = bench_zmq
        self.port = free_port()
        self.proc, (pull_port,) = bench_zmq.start_server("raw", self.port)
        self.raw = bench_zmq.Raw(self.port, int(pull_port))
        self._fan: Any = None

    def _body(self, size: int) -> bytes:
        return json.dumps({"v": 1, "kind": "call", "method": "work",
                           "args": {"i": 1, "payload": "x" * size}}).encode()

    def casts(self, n: int, size: int = 100) -> Measured:
        with payload(self.mod, "RAW_BODY", self._body(size)):
            return self.raw.pushes(n)

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        with payload(self.mod, "RAW_BODY", self._body(size)):
            return self.raw.roundtrips(n)

    def fanout(self, n: int) -> Measured:
        from benchmarks.suite.raw_fanout import ZmqFanout
        if self._fan is None:
            self._fan = ZmqFanout()
        return self._fan.run(n)

    def close(self) -> None:
        self.raw.req.send(b"quit")
        self.raw.req.recv()
        self.raw.ctx.destroy(linger=0)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        if self._fan is not None:
            self._fan.close()


class ProtonPeer(Peer):
    """bench_qpid's raw proton casts; round trips and fanout from :mod:`.raw_proton`."""

    name = "raw proton"
    supports = frozenset({CASTS, CALLS, FANOUT})

    def __init__(self) -> None:
        from benchmarks import bench_qpid
        from benchmarks.suite.raw_proton import RawProton
        self.mod = bench_qpid
        self.raw = RawProton(QPID_URL.replace("qpid://", "amqp://", 1))

    def casts(self, n: int, size: int = 100) -> Measured:
        with payload(self.mod, "PAYLOAD", "x" * size):
            return self.mod.raw_proton_casts(QPID_URL, n)

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        return self.raw.roundtrips(n, size)

    def fanout(self, n: int) -> Measured:
        return self.raw.fanout(n)

    def close(self) -> None:
        self.raw.close()


class NatsPeer(Peer):
    """bench_nats's raw nats-py: request/reply and publish+subscribe in one
    asyncio loop (two connections), no threads crossed."""

    name = "raw nats-py"
    supports = frozenset({CASTS, CALLS})

    def __init__(self) -> None:
        from benchmarks import bench_nats
        self.raw = bench_nats.RawNats(NATS_URL)

    def casts(self, n: int, size: int = 100) -> Measured:
        return self.raw.publishes(n, size)

    def calls(self, n: int, threads: int = 1, size: int = 100) -> Measured:
        return self.raw.roundtrips(n, size)

    def close(self) -> None:
        self.raw.close()


class AioPikaPeer(Peer):
    """aio-pika's RPC pattern (:class:`.aio_workload.AioPikaRPC`), asyncio calls only."""

    name = "aio-pika"
    supports = frozenset({ACALLS})

    def __init__(self) -> None:
        from benchmarks.suite.aio_workload import AioPikaRPC
        self.rpc = AioPikaRPC()

    def acalls(self, n: int, concurrency: int, size: int = 100) -> Measured:
        return self.rpc.calls(n, concurrency, size)

    def close(self) -> None:
        self.rpc.close()


PEERS: dict[str, list[type[Peer]]] = {
    "memory": [BarePeer],
    "rabbit": [OsloPeer, KombuPeer, AioPikaPeer],
    "qpid": [ProtonPeer],
    "zmq": [PyzmqPeer],
    "nats": [NatsPeer],
}


def start_peers(driver: str, log: Any = print) -> tuple[list[Peer], list[str]]:
    """The peers of ``driver`` that could start, and a line for each that could not."""
    peers, missing = [], []
    for cls in PEERS[driver]:
        if cls is OsloPeer and oslo_version() is None:
            missing.append("oslo.messaging is not installed: its ratios are not measured "
                           "(pip install -r benchmarks/requirements.txt)")
            continue
        if cls is AioPikaPeer and aio_pika_version() is None:
            missing.append("aio-pika is not installed: its ratios are not measured "
                           "(pip install -r benchmarks/requirements.txt)")
            continue
        t0 = time.monotonic()
        try:
            peers.append(cls())
        except Exception as exc:  # a peer that cannot start is reported, not fatal
            missing.append(f"{cls.name} could not start: {type(exc).__name__}: {exc}")
            continue
        log(f"{driver}: {cls.name} ready in {time.monotonic() - t0:.1f} s")
    return peers, missing
