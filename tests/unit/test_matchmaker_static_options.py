"""Unit tests of the static matchmaker and its static_hosts option syntax."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from oslo_config import cfg

import rpccore
from rpccore.cell import Cell
from rpccore_matchmaker_static import HostMap, StaticMatchMaker


def make(tmp_path: Path, body: str) -> StaticMatchMaker:
    """A static matchmaker built from a config file whose cell section is ``body``."""
    path = tmp_path / "rpc.conf"
    path.write_text("[cell:edge]\n" + textwrap.dedent(body))
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], project="test", default_config_files=[],
         default_config_dirs=[])
    conf.register_opts(StaticMatchMaker.options(), group="cell:edge")
    return StaticMatchMaker(conf, "cell:edge")


def test_no_options_means_no_hosts(tmp_path: Path) -> None:
    mm = make(tmp_path, "")
    assert mm.lookup("compute") == []
    assert mm.lookup("") == []


def test_compact_form(tmp_path: Path) -> None:
    mm = make(tmp_path, """\
        static_hosts = compute:127.0.0.2;127.0.0.3:9600 , scheduler : 10.0.0.1
        """)
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
    assert mm.lookup("scheduler") == ["10.0.0.1"]
    assert mm.lookup("other") == []


def test_default_hosts_for_unlisted_topics(tmp_path: Path) -> None:
    mm = make(tmp_path, """\
        static_hosts = compute:127.0.0.2, nobody:
        default_hosts = 127.0.0.5, 127.0.0.6:9700
        """)
    assert mm.lookup("compute") == ["127.0.0.2"]
    assert mm.lookup("anything.else") == ["127.0.0.5", "127.0.0.6:9700"]
    # listed with no hosts: none, default_hosts does not apply
    assert mm.lookup("nobody") == []


def test_json_form_allows_any_topic(tmp_path: Path) -> None:
    mm = make(tmp_path, """\
        static_hosts = {"a:b,c": ["127.0.0.2", "[::1]:9601"], " sp ä": ["h"], "plain": []}
        """)
    assert mm.lookup("a:b,c") == ["127.0.0.2", "[::1]:9601"]
    assert mm.lookup(" sp ä") == ["h"]
    assert mm.lookup("plain") == []
    assert mm.lookup("a") == []


def test_lookup_returns_a_copy(tmp_path: Path) -> None:
    mm = make(tmp_path, "static_hosts = t:h1\n")
    mm.lookup("t").append("h2")
    assert mm.lookup("t") == ["h1"]


def test_register_and_unregister_are_no_ops(tmp_path: Path) -> None:
    mm = make(tmp_path, "static_hosts = t:h1\n")
    mm.register("t", "h9")
    mm.register("new", "h9")
    mm.unregister("t", "h1")
    assert mm.lookup("t") == ["h1"]
    assert mm.lookup("new") == []
    mm.close()
    mm.close()


def test_duplicate_hosts_are_dropped(tmp_path: Path) -> None:
    mm = make(tmp_path, "static_hosts = t:h1;h2;h1\ndefault_hosts = d,d\n")
    assert mm.lookup("t") == ["h1", "h2"]
    assert mm.lookup("x") == ["d"]


@pytest.mark.parametrize("text, message", [
    ("compute", "is not TOPIC:HOST"),
    (":h1", "is not TOPIC:HOST"),
    ("t:h1, t:h2", "given twice"),
    ('{"t": "h1",}', "invalid JSON at line 1 column 12"),
    ('{"t": [1]}', "is not a non-empty string"),
    ('{"t": {"h": 1}}', "hosts must be a list"),
    ('{"t": ["a b"]}', "contains whitespace"),
    ('{"": ["h"]}', "topic '' is not"),
])
def test_bad_values_are_rejected_clearly(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HostMap()(text)


def test_bad_value_in_a_config_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigFileValueError, match="static_hosts"):
        make(tmp_path, 'static_hosts = {"t": [1]}\n')


def test_bad_default_host_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(rpccore.ConfigError, match="default_hosts"):
        make(tmp_path, "default_hosts = a;b\n")


def test_dict_override_and_sample_format_round_trip() -> None:
    hostmap = HostMap()
    value = hostmap({"x:y": ["h1", "h2:1"], "z": "h3"})
    assert value == {"x:y": ["h1", "h2:1"], "z": ["h3"]}
    assert hostmap(hostmap.format_defaults(value)[0]) == value
    assert hostmap.format_defaults({}) == ["{}"]


def test_loaded_through_the_cell_with_url_query_override() -> None:
    """The entry point works and a transport URL query parameter sets the option."""
    name = "st" + os.urandom(3).hex()
    cell = Cell(cfg.ConfigOpts(), name,
                {"transport_url": "memory:///x?static_hosts=compute:127.0.0.2;127.0.0.3"})
    mm = cell.load_matchmaker("static")
    assert isinstance(mm, StaticMatchMaker)
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3"]
    # a second load for the same cell registers the same options again: no error
    assert cell.load_matchmaker("static").lookup("compute") == ["127.0.0.2", "127.0.0.3"]
