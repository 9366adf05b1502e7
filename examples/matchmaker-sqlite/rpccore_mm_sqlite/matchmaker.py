"""Registrations kept in one SQLite file that every process of a host shares.

Useful where servers and clients run on one machine (or share a file system)
and no Redis is at hand. Each registration expires ``sqlite_ttl`` seconds
after its last ``register()``; the zmq driver re-registers every heartbeat.
"""

from __future__ import annotations

import sqlite3
import threading
import time

from oslo_config import cfg

import rpccore


class SQLiteMatchMaker(rpccore.MatchMaker):
    """Hosts of each topic, in the table ``hosts`` of ``sqlite_path``."""

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt("sqlite_path", default="rpccore-matchmaker.sqlite",
                       help="The SQLite file that holds the registrations."),
            cfg.FloatOpt("sqlite_ttl", default=30.0, min=0.1,
                         help="Seconds a registration lives unless refreshed."),
        ]

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        options = conf[group]
        self._ttl = options.sqlite_ttl
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(options.sqlite_path, timeout=5,
                                       check_same_thread=False, isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS hosts (cell TEXT, topic TEXT, "
                             "host TEXT, expires REAL, PRIMARY KEY (cell, topic, host))")
        except sqlite3.Error as exc:
            raise rpccore.ConfigError(
                f"sqlite matchmaker: cannot use {options.sqlite_path!r}: {exc}") from None

    def _run(self, sql: str, *params: object) -> list[tuple[str]]:
        try:
            with self._lock:
                return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise rpccore.TransportError(f"sqlite matchmaker: {exc}") from None

    def register(self, topic: str, host: str) -> None:
        self._run("INSERT OR REPLACE INTO hosts VALUES (?, ?, ?, ?)",
                  self.group, topic, host, time.time() + self._ttl)

    def unregister(self, topic: str, host: str) -> None:
        self._run("DELETE FROM hosts WHERE cell = ? AND topic = ? AND host = ?",
                  self.group, topic, host)

    def lookup(self, topic: str) -> list[str]:
        rows = self._run("SELECT host FROM hosts WHERE cell = ? AND topic = ? "
                         "AND expires > ? ORDER BY host", self.group, topic, time.time())
        return [row[0] for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
