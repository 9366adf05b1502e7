"""The matchmaker conformance suite on the ring matchmaker (a real file)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator

import pytest
from oslo_config import cfg

from rpccore.matchmaker import MatchMaker
from rpccore.testing import MatchMakerConformance
from rpccore_matchmaker_ring import RingMatchMaker


class TestRingConformance(MatchMakerConformance):
    writable = False

    @pytest.fixture(autouse=True)
    def _ringfile(self) -> Iterator[None]:
        with tempfile.TemporaryDirectory() as tmp:
            self.path = os.path.join(tmp, "ring.json")
            with open(self.path, "w", encoding="utf-8") as ring:
                json.dump({"compute": ["127.0.0.2"], "a:b": ["127.0.0.3:9600"]}, ring)
            yield

    def make_matchmaker(self, conf: cfg.ConfigOpts, group: str) -> MatchMaker:
        conf.register_opts(RingMatchMaker.options(), group=group)
        conf.set_override("ringfile", self.path, group=group)
        return RingMatchMaker(conf, group)

    def configured_hosts(self, topic: str) -> list[str]:
        return []  # the suite's topics are random, so not in the ring

    def test_ring_topics(self) -> None:
        mm = self.matchmaker()
        assert mm.lookup("compute") == ["127.0.0.2"]
        assert mm.lookup("a:b") == ["127.0.0.3:9600"]
