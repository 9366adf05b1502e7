"""What goes into a request's envelope: the message checked, the context,
the version and namespace, and a fresh id."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rpccore import envelope
from rpccore.dispatcher import parse_version
from rpccore.errors import InvalidMessage

if TYPE_CHECKING:
    from rpccore.cell import Cell

Context = Mapping[str, Any] | Any


def context_dict(ctx: Context) -> dict[str, Any]:
    """``ctx`` as the dict the envelope carries."""
    if type(ctx) is dict:
        return ctx
    if ctx is None:
        return {}
    if isinstance(ctx, Mapping):
        return dict(ctx)
    to_dict = getattr(ctx, "to_dict", None)
    if callable(to_dict):
        value = to_dict()
        if isinstance(value, Mapping):
            return dict(value)
    raise InvalidMessage(f"ctx must be a dict or have to_dict(), not {type(ctx).__name__}")


def check_version(message: Mapping[str, Any], env: dict[str, Any]) -> None:
    """Copy a message's ``version`` and ``namespace`` into the envelope."""
    version = message.get("version")
    if version is not None:
        try:
            parse_version(version)
        except ValueError as exc:
            raise InvalidMessage(f"message 'version': {exc}") from None
        if version != "1.0":
            env["ver"] = version
    namespace = message.get("namespace")
    if namespace is not None:
        if type(namespace) is not str:
            raise InvalidMessage(f"message 'namespace' must be a string, not {namespace!r}")
        env["ns"] = namespace


def check_message(message: Any) -> tuple[str, dict[str, Any]]:
    """``(method, args)`` of a message, or :class:`InvalidMessage`."""
    if type(message) is dict:  # the common case, without ABC checks
        method, args = message.get("method"), message.get("args", {})
        if type(method) is str and method and type(args) is dict:
            for key in args:
                if type(key) is not str:
                    break
            else:
                return method, args
    if not isinstance(message, Mapping):
        raise InvalidMessage(f"a message is a dict {{'method': ..., 'args': {{...}}}}, "
                             f"not {type(message).__name__}")
    method = message.get("method")
    if not isinstance(method, str) or not method:
        raise InvalidMessage("message has no 'method' (a non-empty string)")
    args = message.get("args", {})
    if not isinstance(args, Mapping):
        raise InvalidMessage(f"message 'args' must be a dict, not {type(args).__name__}")
    for key in args:
        if not isinstance(key, str):
            raise InvalidMessage(f"message 'args' keys must be strings, not {key!r}")
    return method, dict(args)


def request_envelope(cell: Cell, kind: str, ctx: Context, dest: dict[str, object],
                     message: Any, timeout: float | None, extra: dict[str, Any]
                     ) -> tuple[dict[str, Any], float | None]:
    """The envelope of a request (``kind`` call or cast) to ``dest`` (its
    envelope form) in ``cell``, not encoded yet, and its timeout (a call's
    default is the cell's ``rpc_response_timeout``).

    :raises InvalidMessage: a malformed message, context or timeout.
    """
    method, args = check_message(message)
    if timeout is None and kind == "call":
        timeout = cell.rpc_response_timeout
    if timeout is None and cell.secret_key is not None:
        timeout = cell.signed_message_ttl
    if timeout is not None and timeout <= 0:
        raise InvalidMessage(f"timeout must be positive, not {timeout}")
    env = {"v": envelope.VERSION, "id": new_id(), "kind": kind, "dest": dest,
           "method": method, "args": args, "ctx": context_dict(ctx)}
    if len(message) > 2:  # more than method and args: a version, a namespace
        check_version(message, env)
    if extra:
        env.update(extra)
    if timeout is not None:  # no null in the envelope (see rpccore.envelope)
        env["deadline"] = time.time() + timeout
    return env, timeout


# Message ids: a random per-process prefix and a counter (unique, and cheap).
_ID_PREFIX = os.urandom(8).hex()
_id_counter = itertools.count()


def new_id() -> str:
    """A message id unique to this process (and to forks of it)."""
    return f"{_ID_PREFIX}{next(_id_counter):x}"


def _reset_ids_after_fork() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_reset_ids_after_fork)
