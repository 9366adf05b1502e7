"""A stream's timeout bounds the wait for each item, not the whole stream
(docs/upgrades-and-long-calls.rst); a reader that timed out lets the server's generator go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpccore
from rpccore.testing import memory_rpc


class Slow:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def trickle(self, ctx: dict[str, Any], gap: float, count: int, stall: float) -> Iterator[int]:
        try:
            for i in range(count):
                time.sleep(gap)
                yield i
            if stall:
                time.sleep(stall)
                while True:  # then as much as the caller's credit allows
                    yield count
        finally:
            self.closed.set()


def test_each_item_has_the_timeout_not_the_whole_stream() -> None:
    endpoint = Slow()
    with memory_rpc() as rpc:
        rpc.serve("svc", [endpoint]).start()
        start = time.monotonic()
        reader = rpc.stream({}, "svc", {"method": "trickle",
                                        "args": {"gap": 0.25, "count": 4, "stall": 0.0}},
                            timeout=0.6)
        assert list(reader) == [0, 1, 2, 3]
        assert time.monotonic() - start > 0.6  # longer than the timeout in all


def test_a_stalled_stream_times_out_and_the_server_stops_its_generator() -> None:
    endpoint = Slow()
    with memory_rpc() as rpc:
        rpc.serve("svc", [endpoint]).start()
        reader = rpc.stream({}, "svc", {"method": "trickle",
                                        "args": {"gap": 0.0, "count": 2, "stall": 1.5}},
                            timeout=0.5)
        assert [next(reader), next(reader)] == [0, 1]
        start = time.monotonic()
        with pytest.raises(rpccore.Timeout, match="no item within 0.5 s after 2 items"):
            next(reader)
        assert 0.4 < time.monotonic() - start < 2.0
        # the reader is done, so the server's generator is closed once its
        # current step returns, not after the stream's idle limit (60 s)
        assert endpoint.closed.wait(5.0), "the generator went on after the reader gave up"
