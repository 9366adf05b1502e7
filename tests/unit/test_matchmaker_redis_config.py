"""Unit tests of the redis matchmaker that need no Redis: URL masking, key
names, option errors."""

from __future__ import annotations

import itertools

import pytest
from oslo_config import cfg

import rpccore
from rpccore_matchmaker_redis import RedisMatchMaker, masked_url, topic_key


@pytest.mark.parametrize("url, masked", [
    ("redis://:pw@h:6379/0", "redis://:****@h:6379/0"),
    ("rediss://user:p%40w:x@h:6380/2?ssl_ca_certs=/ca.pem", "rediss://user:****@h:6380/2"),
    ("redis://user@h/1", "redis://user@h/1"),
    ("redis://h:6379", "redis://h:6379"),
])
def test_masked_url_never_shows_the_password(url: str, masked: str) -> None:
    assert masked_url(url) == masked


def test_topic_keys_are_injective() -> None:
    parts = ["", "a", ":", "a:b", "b", "%3A", "%", "ä", " "]
    seen: dict[str, tuple[str, ...]] = {}
    for triple in itertools.product(parts, repeat=3):
        key = topic_key(*triple)
        assert seen.setdefault(key, triple) == triple
    assert topic_key("rpccore.mm", "cell:edge", "compute") == "rpccore.mm:cell%3Aedge:compute"


def test_bad_url_is_a_config_error_without_the_password() -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(RedisMatchMaker.options(), group="cell:x")
    conf.set_override("matchmaker_url", "http://:secret@h/0", group="cell:x")
    with pytest.raises(rpccore.ConfigError) as raised:
        RedisMatchMaker(conf, "cell:x")
    assert "secret" not in str(raised.value)
    assert "matchmaker_url" in str(raised.value)


def test_construction_does_not_connect() -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(RedisMatchMaker.options(), group="cell:x")
    conf.set_override("matchmaker_url", "redis://192.0.2.1:1/0", group="cell:x")
    mm = RedisMatchMaker(conf, "cell:x")  # TEST-NET address: would hang if it connected
    assert mm.online
    mm.close()
    mm.close()
