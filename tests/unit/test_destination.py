from __future__ import annotations

import pytest

import rpccore
from rpccore import destination
from rpccore.destination import as_destination, resolve


def test_destinations_are_values() -> None:
    a = rpccore.make_destination("compute.x", host="h.1", cell="edge")
    assert a == rpccore.Destination("compute.x", "h.1", "edge", False)
    assert hash(a) == hash(rpccore.make_destination("compute.x", host="h.1", cell="edge"))
    assert a != rpccore.make_destination("compute", host="x.h.1", cell="edge")
    with pytest.raises(AttributeError):
        a.topic = "other"  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [
    {"topic": ""}, {"topic": None}, {"topic": 5}, {"topic": "t", "host": ""},
    {"topic": "t", "cell": ""}, {"topic": "t", "host": "h", "fanout": True},
])
def test_bad_destinations(kwargs: dict[str, object]) -> None:
    with pytest.raises(rpccore.InvalidDestination):
        rpccore.make_destination(**kwargs)  # type: ignore[arg-type]


def test_plain_topic_string() -> None:
    assert as_destination("scheduler") == rpccore.Destination("scheduler")
    with pytest.raises(rpccore.InvalidDestination):
        as_destination(42)  # type: ignore[arg-type]


def test_resolve_checks_and_remembers() -> None:
    dest = rpccore.make_destination("compute", host="h.1")
    first = resolve(dest)
    assert first == (dest, dest.to_dict())
    assert resolve(dest) is first  # remembered
    assert resolve("scheduler") == (rpccore.Destination("scheduler"),
                                    {"topic": "scheduler", "fanout": False})
    # what as_destination refuses, resolve refuses, every time (nothing is remembered)
    for bad in (rpccore.Destination(""), rpccore.Destination(["unhashable"]), "", 42):  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(rpccore.InvalidDestination):
                resolve(bad)  # type: ignore[arg-type]
    # a plain tuple equal to a remembered Destination is still refused
    with pytest.raises(rpccore.InvalidDestination):
        resolve(tuple(dest))  # type: ignore[arg-type]


def test_resolve_forgets_past_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(destination, "RESOLVED_MAX", 3)
    monkeypatch.setattr(destination, "_RESOLVED", {})
    for i in range(10):
        assert resolve(f"topic-{i}")[0].topic == f"topic-{i}"
        assert len(destination._RESOLVED) <= 3
