"""The zmq client's one failover routine and its peer table (no network):
which host a request tries next, what is counted, which error a sender gets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpccore import RPC, TransportError, Undeliverable
from rpccore.cell import Cell
from rpccore_zmq import protocol
from rpccore_zmq.failover import NextHost, fail_over, failure
from rpccore_zmq.outgoing import Outgoing
from rpccore_zmq.peers import PeerTable
from rpccore_zmq.testing import zmq_rpc


@pytest.fixture
def cell() -> Iterator[Cell]:
    rpc: RPC = zmq_rpc(9801)
    rpc.cell().driver()  # loads the driver, which adds its options to the cell
    yield rpc.cell()
    rpc.close()


def request(*hosts: str) -> Outgoing:
    return Outgoing(protocol.CALL, b"topic", b"", b"{}", list(hosts), False, False)


def test_the_first_host_that_takes_it_wins(cell: Cell) -> None:
    peers = PeerTable(cell)
    tried: list[tuple[str, str]] = []

    def try_host(host: str, endpoint: str) -> None:
        tried.append((host, endpoint))
        if host != "h3":
            raise NextHost(f"{host} would not")

    out = request("h1", "h2:9000", "h3")
    assert fail_over(out, peers, try_host)
    assert tried == [("h1", "tcp://h1:9801"), ("h2:9000", "tcp://h2:9000"),
                     ("h3", "tcp://h3:9801")]
    assert out.tried == ["h1", "h2:9000", "h3"]
    assert out.why == "h2:9000 would not"
    assert cell.stats.get("zmq_rerouted") == 2


def test_dead_hosts_go_last_and_malformed_ones_are_skipped(cell: Cell) -> None:
    peers = PeerTable(cell)
    peers.mark_dead(peers.endpoint_of("h1"), "silent")
    assert peers.is_dead("h1") and not peers.is_dead("h2")
    order: list[str] = []

    def try_host(host: str, endpoint: str) -> None:
        order.append(host)
        raise NextHost()

    out = request("h1", "[bad", "h2")
    assert not fail_over(out, peers, try_host)
    # h2 first (h1 is dead), "[bad" never reaches try_host, h1 last
    assert order == ["h2", "h1"]
    assert "[bad" in out.tried
    peers.mark_alive(peers.endpoint_of("h1"))
    assert not peers.is_dead("h1")
    assert cell.stats.get("zmq_peer_failures") == 1


def test_every_host_refusing_is_undeliverable_anything_else_a_transport_error(
        cell: Cell) -> None:
    peers = PeerTable(cell)

    def refuse(host: str, endpoint: str) -> None:
        out.refusals += 1
        raise NextHost(f"nobody consumes it on {host}")

    out = request("h1", "h2")
    assert not fail_over(out, peers, refuse)
    assert isinstance(failure(out), Undeliverable)

    def one_silent(host: str, endpoint: str) -> None:
        if host == "h1":
            raise NextHost("no receipt")
        out.refusals += 1
        raise NextHost("refused")

    out = request("h1", "h2")
    assert not fail_over(out, peers, one_silent)
    error = failure(out)
    assert isinstance(error, TransportError) and not isinstance(error, Undeliverable)
    assert "h1, h2" in str(error)
    assert isinstance(failure(request("h1")), TransportError)  # never tried at all


def test_sequence_numbers_increase_for_every_connection(cell: Cell) -> None:
    peers = PeerTable(cell)
    numbers = [next(peers.seq) for _ in range(5)]
    assert numbers == sorted(set(numbers))


def test_which_listener_settings_cells_must_share(cell: Cell) -> None:
    from rpccore_zmq.settings import ListenerSettings

    base = ListenerSettings(65536, 1000, 5.0, None)
    assert base.conflicts(ListenerSettings(65536, 2000, 1.0, None)) == []
    assert base.tuned_otherwise(ListenerSettings(65536, 2000, 1.0, None))
    assert ["max_message_size (1024 there, 65536 here)"] == \
        base.conflicts(ListenerSettings(1024, 1000, 5.0, None))
