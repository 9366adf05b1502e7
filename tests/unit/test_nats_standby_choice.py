"""The nats driver's standby streams of confirmed casts
(:mod:`rpccore_nats.standby`): which stream a sender tries first, and which
stream's leader a server moves."""

from __future__ import annotations

from rpccore import make_destination
from rpccore_nats.naming import Subjects
from rpccore_nats.standby import SINGLE_SERVER, CastStreams, to_move


def test_a_sender_tries_its_preferred_stream_first_then_the_others_in_turn() -> None:
    streams = CastStreams(Subjects("nova"), 3)
    dest = make_destination("compute", host="h.1")
    assert [stream for _, stream in streams.targets(dest)] == streams.names
    streams.stored(streams.names[2])
    targets = streams.targets(dest)
    assert [stream for _, stream in targets] == [streams.names[2], streams.names[0],
                                                 streams.names[1]]
    assert targets[0][0] == Subjects("nova").confirmed_direct("compute", "h.1", 2)
    assert targets[1][0] == Subjects("nova").confirmed_direct("compute", "h.1")


def test_one_stream_is_the_stream_every_release_used() -> None:
    streams = CastStreams(Subjects("nova"), 1)
    dest = make_destination("compute")
    assert streams.targets(dest) == [(Subjects("nova").confirmed_work("compute"),
                                      Subjects("nova").cast_stream)]


def test_each_stream_holds_only_its_own_subjects() -> None:
    subjects = Subjects("nova")
    wildcards = [subjects.cast_stream_wildcard(k)[:-1] for k in range(5)]
    for k in range(5):
        work = subjects.confirmed_work("t", k)
        direct = subjects.confirmed_direct("t", "h", k)
        for j, prefix in enumerate(wildcards):
            assert work.startswith(prefix) == (j == k)
            assert direct.startswith(prefix) == (j == k)
    assert len({subjects.cast_stream_name(k) for k in range(5)}) == 5


def test_the_later_of_two_streams_sharing_a_leader_moves() -> None:
    assert to_move([("n0", {"n1", "n2"}), ("n0", {"n1", "n2"})]) == 1
    assert to_move([("n0", {"n1", "n2"}), ("n1", {"n0", "n2"}), ("n1", {"n0", "n2"})]) == 2


def test_nothing_moves_when_the_leaders_are_apart_or_cannot_be() -> None:
    assert to_move([("n0", {"n1", "n2"}), ("n1", {"n0", "n2"})]) is None
    # one node of three left: sharing it cannot be helped
    assert to_move([("n0", set()), ("n0", set())]) is None
    # the only other current replica already leads a stream
    assert to_move([("n0", {"n1"}), ("n1", {"n0"}), ("n1", {"n0"})]) is None
    # a stream without a leader (being elected) is left alone
    assert to_move([("n0", {"n1", "n2"}), (None, {"n0", "n1"})]) is None
    # a single server: no cluster information
    assert to_move([(SINGLE_SERVER, set()), (SINGLE_SERVER, set())]) is None

