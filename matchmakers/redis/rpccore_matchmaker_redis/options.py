"""Options of the redis matchmaker, and a password-free form of its URL."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from oslo_config import cfg

OPTIONS: list[cfg.Opt] = [
    cfg.StrOpt("matchmaker_url", default="redis://127.0.0.1:6379/0", secret=True,
               help="Redis holding this cell's registrations: "
                    "redis://[[user]:password@]host:port/db, or rediss://... for TLS "
                    "(redis-py connection options such as ssl_ca_certs may be given "
                    "as query parameters)."),
    cfg.IntOpt("matchmaker_ttl", default=30, min=1,
               help="Seconds a registration lives unless it is refreshed. The zmq "
                    "driver refreshes every heartbeat: keep this at least 3 times its "
                    "heartbeat interval."),
    cfg.FloatOpt("matchmaker_timeout", default=0.5, min=0.01,
                 help="Seconds to wait for Redis (connecting, and each reply) before "
                      "taking it as unreachable; bounds how long a look-up can block."),
    cfg.FloatOpt("matchmaker_cache_seconds", default=0.0, min=0.0,
                 help="A non-empty look-up result younger than this is answered from "
                      "memory without asking Redis (0: ask every time; the zmq driver "
                      "already caches look-ups for zmq_lookup_cache_ttl). Registrations "
                      "made through the same matchmaker are seen at once."),
    cfg.StrOpt("matchmaker_key_prefix", default="rpccore.mm",
               help="Prefix of every Redis key; deployments sharing one Redis "
                    "database with the same cell names need different prefixes."),
]


def masked_url(url: str) -> str:
    """``url`` with any password replaced by ``****``: safe to log."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            auth, _, hostport = netloc.rpartition("@")
            user, sep, _password = auth.partition(":")
            netloc = f"{user}{sep}{'****' if sep else ''}@{hostport}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "<unparsable matchmaker_url>"
