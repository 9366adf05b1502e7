"""The example matchmaker passes rpccore's matchmaker conformance kit."""

from __future__ import annotations

import os
import tempfile
import time

from oslo_config import cfg
from rpccore_mm_sqlite.matchmaker import SQLiteMatchMaker

from rpccore.testing import MatchMakerConformance

_DB = os.path.join(tempfile.mkdtemp(prefix="mm-sqlite-"), "hosts.sqlite")


def build(conf: cfg.ConfigOpts, group: str, ttl: float) -> SQLiteMatchMaker:
    conf.register_opts(SQLiteMatchMaker.options(), group=group)
    conf.set_override("sqlite_path", _DB, group=group)
    conf.set_override("sqlite_ttl", ttl, group=group)
    return SQLiteMatchMaker(conf, group)


class TestSQLiteMatchMaker(MatchMakerConformance):
    def make_matchmaker(self, conf: cfg.ConfigOpts, group: str) -> SQLiteMatchMaker:
        return build(conf, group, ttl=30)

    def test_registrations_expire_unless_refreshed(self) -> None:
        mm = build(cfg.ConfigOpts(), f"cell:ttl-{os.urandom(3).hex()}", ttl=0.3)
        try:
            mm.register("compute", "127.0.0.2")
            assert mm.lookup("compute") == ["127.0.0.2"]
            time.sleep(0.4)
            assert mm.lookup("compute") == []
        finally:
            mm.close()
