"""Reading and checking a ring file: ``{"topic": ["host", ...], ...}``.

Rules: UTF-8 JSON; the top level is an object; each value is a list of
host strings (``HOST`` or ``HOST:PORT``; not empty, no whitespace, ``,`` or
``;``); a topic may appear once. Topics may contain any character. Duplicate
hosts of a topic are dropped; an empty list means the topic has no hosts.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from rpccore.errors import ConfigError

_BAD_HOST = re.compile(r"[\s,;]")

Ring = dict[str, tuple[str, ...]]


class RingFileError(ConfigError):
    """The ring file cannot be used. The message names the file and, for a
    syntax or encoding error, the line and column (both from 1).

    :ivar path: the ring file
    :ivar line: line of the error, or None when it is not about a position
    :ivar column: column of the error, or None
    """

    def __init__(self, path: str, problem: str, line: int | None = None,
                 column: int | None = None) -> None:
        where = f", line {line} column {column}" if line is not None else ""
        super().__init__(f"ring file {path}{where}: {problem}")
        self.path = path
        self.problem = problem
        self.line = line
        self.column = column


@dataclass(frozen=True)
class FileSignature:
    """What changes when a file is rewritten (checked on every look-up)."""

    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str) -> FileSignature:
        """:raises OSError: the file cannot be stat()ed."""
        st = os.stat(path)
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """(line, column) of byte ``offset``, both from 1."""
    line = data.count(b"\n", 0, offset) + 1
    return line, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


def _no_duplicates(path: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise RingFileError(path, f"topic {key!r} appears twice")
            result[key] = value
        return result
    return hook


def parse_ring(path: str, data: bytes) -> Ring:
    """The ring in ``data`` (the contents of ``path``).

    :raises RingFileError: not UTF-8, not JSON, a repeated topic, not an
        object of lists of host strings.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(data, exc.start)
        raise RingFileError(path, "not UTF-8", line, column) from None
    try:
        parsed = json.loads(text, object_pairs_hook=_no_duplicates(path))
    except json.JSONDecodeError as exc:
        raise RingFileError(path, f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    if not isinstance(parsed, dict):
        raise RingFileError(path, 'the top level must be an object {"topic": ["host", ...]}, '
                                  f"not {type(parsed).__name__}")
    ring: Ring = {}
    for topic, hosts in parsed.items():
        if not isinstance(hosts, list):
            raise RingFileError(path, f"topic {topic!r}: hosts must be a list, "
                                      f"not {type(hosts).__name__}")
        for host in hosts:
            if not isinstance(host, str) or not host or _BAD_HOST.search(host):
                raise RingFileError(path, f"topic {topic!r}: bad host {host!r} (a host is "
                                          "a non-empty string without whitespace, ',' or ';')")
        ring[topic] = tuple(dict.fromkeys(hosts))
    return ring


def read_ring(path: str) -> tuple[Ring, FileSignature]:
    """Read and parse ``path``; the signature is taken before reading, so a
    change made while reading is seen at the next check.

    :raises RingFileError: the file cannot be read, or :func:`parse_ring` fails.
    """
    try:
        signature = FileSignature.of(path)
        with open(path, "rb") as ring_file:
            data = ring_file.read()
    except OSError as exc:
        raise RingFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    return parse_ring(path, data), signature
