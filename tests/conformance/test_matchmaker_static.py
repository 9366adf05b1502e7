"""The matchmaker conformance suite on the static matchmaker."""

from __future__ import annotations

from oslo_config import cfg

from rpccore.matchmaker import MatchMaker
from rpccore.testing import MatchMakerConformance
from rpccore_matchmaker_static import StaticMatchMaker


class TestStaticNoOptions(MatchMakerConformance):
    writable = False

    def make_matchmaker(self, conf: cfg.ConfigOpts, group: str) -> MatchMaker:
        conf.register_opts(StaticMatchMaker.options(), group=group)
        return StaticMatchMaker(conf, group)


class TestStaticDefaultHosts(MatchMakerConformance):
    writable = False

    def make_matchmaker(self, conf: cfg.ConfigOpts, group: str) -> MatchMaker:
        conf.register_opts(StaticMatchMaker.options(), group=group)
        conf.set_override("default_hosts", ["127.0.0.2", "127.0.0.3:9600"], group=group)
        conf.set_override("static_hosts", "other:127.0.0.9", group=group)
        return StaticMatchMaker(conf, group)

    def configured_hosts(self, topic: str) -> list[str]:
        return ["127.0.0.2", "127.0.0.3:9600"]
