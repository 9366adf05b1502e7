from __future__ import annotations

import pytest

import rpccore
from rpccore.destination import as_destination


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
