"""Standby streams of confirmed casts (``nats_cast_streams``,
:mod:`rpccore_nats.standby`): on the machine's NATS, servers consume every
stream and a sender that moved to another stream is still served; on a
private 3-node cluster, streams whose leaders share a node are moved apart.
(Failing over when a leader dies: ``test_nats_faults.py``.)"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import nats
import nats.errors
import pytest
from nats.js import api

from private_nats import NATS_URL, PrivateNatsCluster, delete_streams_of
from rpccore.errors import Undeliverable
from rpccore.testing import single_cell_rpc
from rpccore_nats.naming import Subjects
from rpccore_nats.standby import spread_once


class Sink:
    def __init__(self) -> None:
        self.values: list[str] = []
        self.arrived = threading.Condition()

    def note(self, ctx: dict[str, Any], value: str) -> None:
        with self.arrived:
            self.values.append(value)
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.values) >= count, timeout)
            return list(self.values)


@pytest.fixture
def exchange() -> Iterator[str]:
    name = f"standby-{os.urandom(4).hex()}"
    yield name
    delete_streams_of(name)


def test_every_stream_is_consumed_and_a_sender_may_use_any(exchange: str) -> None:
    sink = Sink()
    with single_cell_rpc(NATS_URL, control_exchange=exchange, nats_cast_streams=3) as server, \
            single_cell_rpc(NATS_URL, control_exchange=exchange,
                            nats_cast_streams=3) as client:
        server.serve(server.make_destination("jobs", host="h1"), [sink]).start()
        driver: Any = client.cell().driver()
        for k in range(3):  # as after failing over to stream k
            driver.cast_streams.preferred = k
            client.cast({}, "jobs", {"method": "note", "args": {"value": f"t{k}"}},
                        confirm=True)
            client.cast({}, client.make_destination("jobs", host="h1"),
                        {"method": "note", "args": {"value": f"h{k}"}}, confirm=True)
        assert sorted(sink.wait_for(6)) == ["h0", "h1", "h2", "t0", "t1", "t2"]
        # a destination no server ever consumed is undeliverable in every stream
        for k in range(3):
            driver.cast_streams.preferred = k
            with pytest.raises(Undeliverable):
                client.cast({}, "nobody-here", {"method": "note", "args": {"value": "x"}},
                            confirm=True)
    names = asyncio.run(_streams_of(exchange))
    assert sorted(names) == sorted(Subjects(exchange).cast_stream_name(k) for k in range(3))


async def _streams_of(exchange: str) -> list[str]:
    client = await nats.connect(NATS_URL)
    try:
        base = Subjects(exchange).base + "."
        return [info.config.name for info in await client.jsm().streams_info()
                if any(s.startswith(base) for s in info.config.subjects or ())
                and info.config.name]
    finally:
        await client.close()


def test_a_single_server_is_settled_at_once() -> None:
    """Streams of a server without a cluster have no leaders to spread: one
    look settles it (servers do not look again every second)."""
    names = [f"standby-single-{os.urandom(3).hex()}-{k}" for k in range(2)]

    async def look() -> bool:
        client = await nats.connect(NATS_URL)
        try:
            for name in names:
                await client.jsm().add_stream(api.StreamConfig(name=name,
                                                               subjects=[name + ".>"]))
            return await spread_once(client, names, "test")
        finally:
            for name in names:
                await client.jsm().delete_stream(name)
            await client.close()

    assert asyncio.run(look()) is True


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateNatsCluster]:
    with PrivateNatsCluster(3) as made:
        yield made


def test_streams_sharing_a_leader_are_moved_apart(cluster: PrivateNatsCluster) -> None:
    asyncio.run(_move_apart(cluster))


async def _leader(client: nats.NATS, name: str) -> str | None:
    """The stream's leader; None while JetStream cannot tell (electing)."""
    try:
        info = await asyncio.wait_for(client.jsm().stream_info(name), 2.0)
    except (TimeoutError, nats.errors.Error):
        return None
    return info.cluster.leader if info.cluster else None


async def _step_down(client: nats.NATS, name: str) -> None:
    try:
        await client.request("$JS.API.STREAM.LEADER.STEPDOWN." + name, b"", timeout=2)
    except nats.errors.Error:  # a timeout: the leader is moving anyway
        pass


async def _move_apart(cluster: PrivateNatsCluster) -> None:
    client = await nats.connect([f"nats://{hp}" for hp in
                                 cluster.url()[len("nats://"):].split(",")])
    try:
        names = ["standby-a", "standby-b"]
        for name in names:
            await client.jsm().add_stream(api.StreamConfig(
                name=name, subjects=[name + ".>"], num_replicas=3))
        # make the second share the first's leader (each stepdown hands it
        # to another node at random)
        end = time.monotonic() + 40
        while True:
            first, second = [await _leader(client, name) for name in names]
            if first is not None and first == second:
                break
            assert time.monotonic() < end, "could not put both leaders on one node"
            if first is not None and second is not None:
                await _step_down(client, names[1])
            await asyncio.sleep(0.5)
        assert await spread_once(client, names, "test") is False  # it moved one
        end = time.monotonic() + 10
        while True:
            leaders = [await _leader(client, name) for name in names]
            if None not in leaders and leaders[0] != leaders[1]:
                break
            assert time.monotonic() < end, f"leaders still together: {leaders}"
            await asyncio.sleep(0.2)
        assert leaders[0] == first  # the first stream's leader stayed
        assert await spread_once(client, names, "test") is True  # settled now
    finally:
        await client.close()
