"""Module-level shortcuts on one default ``RPC`` object."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from oslo_config import cfg

from rpccore.destination import Destination
from rpccore.rpc import RPC
from rpccore.server import Server

_default: RPC | None = None
_lock = threading.Lock()


def init(conf: cfg.ConfigOpts | None = None) -> RPC:
    """Build the default ``RPC`` from ``conf`` (closing a previous one)."""
    global _default
    with _lock:
        old, _default = _default, RPC(conf)
        new = _default
    if old is not None:
        old.close()
    return new


def get_rpc() -> RPC:
    """The default ``RPC``; built with no configuration if ``init`` was not called."""
    global _default
    with _lock:
        if _default is None:
            _default = RPC()
        return _default


def cast(ctx: Any, dest: Destination | str, message: Mapping[str, Any], **kw: Any) -> None:
    """``RPC.cast`` on the default object."""
    get_rpc().cast(ctx, dest, message, **kw)


def call(ctx: Any, dest: Destination | str, message: Mapping[str, Any], **kw: Any) -> Any:
    """``RPC.call`` on the default object."""
    return get_rpc().call(ctx, dest, message, **kw)


def serve(dest: Destination | str, endpoints: Iterable[object], **kw: Any) -> Server:
    """``RPC.serve`` on the default object."""
    return get_rpc().serve(dest, endpoints, **kw)
