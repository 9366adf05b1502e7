"""Unit tests of the ring matchmaker: file syntax errors, reloads, keeping
the last good ring."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from oslo_config import cfg

import rpccore
from rpccore.cell import Cell
from rpccore_matchmaker_ring import RingFileError, RingMatchMaker, parse_ring


def write(path: Path, text: str | bytes) -> None:
    """Replace ``path`` atomically (new inode), as operators are told to."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(tmp, path)


def make(path: Path) -> RingMatchMaker:
    conf = cfg.ConfigOpts()
    conf.register_opts(RingMatchMaker.options(), group="cell:r")
    conf.set_override("ringfile", str(path), group="cell:r")
    return RingMatchMaker(conf, "cell:r")


@pytest.fixture
def ring(tmp_path: Path) -> Path:
    path = tmp_path / "ring.json"
    write(path, '{"compute": ["127.0.0.2", "127.0.0.3:9600", "127.0.0.2"], "a:b c": []}')
    return path


def test_lookup(ring: Path) -> None:
    mm = make(ring)
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
    assert mm.lookup("a:b c") == []
    assert mm.lookup("absent") == []
    mm.register("absent", "h")
    mm.unregister("compute", "127.0.0.2")
    assert mm.lookup("absent") == []
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]


def test_reloads_when_the_file_changes(ring: Path) -> None:
    mm = make(ring)
    write(ring, '{"compute": ["10.0.0.1"]}')
    assert mm.lookup("compute") == ["10.0.0.1"]
    # an in-place rewrite of another size is seen too
    ring.write_text('{"compute": ["10.0.0.1", "10.0.0.2"]}')
    assert mm.lookup("compute") == ["10.0.0.1", "10.0.0.2"]
    assert not mm.refresh()  # unchanged: no re-read


@pytest.mark.parametrize("text, line, column, problem", [
    ('{"compute": ["h1",]\n}', 1, 19, "invalid JSON"),
    ('{\n  "compute": ["h1"]\n  "x": []\n}', 3, 3, "Expecting ',' delimiter"),
    ("", 1, 1, "Expecting value"),
    (b'{"t": ["h\xff"]}', 1, 10, "not UTF-8"),
])
def test_syntax_errors_name_file_line_and_column(tmp_path: Path, text: str | bytes, line: int,
                                                 column: int, problem: str) -> None:
    path = tmp_path / "bad.json"
    write(path, text)
    with pytest.raises(RingFileError) as raised:
        make(path)
    assert (raised.value.line, raised.value.column) == (line, column)
    assert str(raised.value).startswith(f"ring file {path}, line {line} column {column}: ")
    assert problem in str(raised.value)
    assert isinstance(raised.value, rpccore.ConfigError)


@pytest.mark.parametrize("text, problem", [
    ('["h1"]', "top level must be an object"),
    ('{"t": "h1"}', "topic 't': hosts must be a list, not str"),
    ('{"t": ["h1", 2]}', "topic 't': bad host 2"),
    ('{"t": ["a b"]}', "bad host 'a b'"),
    ('{"t": [""]}', "bad host ''"),
    ('{"t": ["h1"], "t": ["h2"]}', "topic 't' appears twice"),
])
def test_content_errors_name_file_and_topic(text: str, problem: str) -> None:
    with pytest.raises(RingFileError, match="^ring file /etc/ring.json: ") as raised:
        parse_ring("/etc/ring.json", text.encode())
    assert problem in str(raised.value)


def test_missing_file_or_option_at_start(tmp_path: Path) -> None:
    with pytest.raises(RingFileError, match="cannot be read: No such file"):
        make(tmp_path / "nope.json")
    conf = cfg.ConfigOpts()
    conf.register_opts(RingMatchMaker.options(), group="cell:r")
    with pytest.raises(rpccore.ConfigError, match="needs the option ringfile"):
        RingMatchMaker(conf, "cell:r")


def test_bad_version_keeps_last_good_ring_and_logs_once(
        ring: Path, caplog: pytest.LogCaptureFixture) -> None:
    mm = make(ring)
    write(ring, '{"compute": ["10.0.0.9"],,}')
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors
    assert f"ring file {ring}, line 1 column 26" in errors[0]
    assert "keeping the previous ring (2 topics)" in errors[0]
    assert mm.last_error is not None and mm.last_error.column == 26
    # fixed: the new ring is used and the error is cleared
    write(ring, '{"compute": ["10.0.0.9"]}')
    assert mm.lookup("compute") == ["10.0.0.9"]
    assert mm.last_error is None


def test_deleted_file_keeps_ring_and_is_reread_when_back(
        ring: Path, caplog: pytest.LogCaptureFixture) -> None:
    mm = make(ring)
    content = ring.read_bytes()
    ring.unlink()
    with caplog.at_level(logging.ERROR):
        assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
        assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1
    write(ring, content.replace(b"127.0.0.3", b"127.0.0.4"))
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.4:9600"]


def test_loaded_by_a_cell(ring: Path) -> None:
    cell = Cell(cfg.ConfigOpts(), "ring" + os.urandom(3).hex(),
                {"transport_url": "memory:///x", "ringfile": str(ring)})
    mm = cell.load_matchmaker("ring")
    assert isinstance(mm, RingMatchMaker)
    assert mm.lookup("compute") == ["127.0.0.2", "127.0.0.3:9600"]
