"""Dispatch: from a method name and arguments to an endpoint's method."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Iterable
from typing import Any

Failure = dict[str, str]


def failure(exc_type: str, message: str, tb: str = "") -> Failure:
    """The wire form of an error, as carried in a reply envelope."""
    return {"type": exc_type, "message": message, "traceback": tb}


def exception_type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class Dispatcher:
    """Finds and runs endpoint methods.

    A method ``name`` is the first public (not ``_``-prefixed) callable
    attribute ``name`` among the endpoints, in order. It is called as
    ``method(ctx, **args)``.
    """

    def __init__(self, endpoints: Iterable[object]) -> None:
        self._endpoints = list(endpoints)
        self._methods: dict[str, Callable[..., Any] | None] = {}

    def _find(self, name: str) -> Callable[..., Any] | None:
        try:
            return self._methods[name]
        except KeyError:
            pass
        found = None
        if not name.startswith("_"):
            for endpoint in self._endpoints:
                candidate = getattr(endpoint, name, None)
                if callable(candidate):
                    found = candidate
                    break
        if len(self._methods) < 10_000:  # unknown names from strangers must not grow it forever
            self._methods[name] = found
        return found

    def dispatch(self, ctx: dict[str, Any], method: str,
                 args: dict[str, Any]) -> tuple[Any, Failure | None]:
        """Run ``method``; return ``(result, None)`` or ``(None, failure)``.

        Never raises for the request's sake: an unknown method, wrong
        arguments or an exception in the endpoint become a failure.
        """
        func = self._find(method)
        if func is None:
            return None, failure("rpccore.NoSuchMethod",
                                 f"no endpoint has a public method {method!r}")
        try:
            return func(ctx, **args), None
        except TypeError as exc:
            if not _binds(func, ctx, args):
                return None, failure("rpccore.InvalidArguments",
                                     f"{method}() cannot take arguments {sorted(args)}: {exc}")
            return None, failure(exception_type_name(exc), str(exc), traceback.format_exc())
        except Exception as exc:
            return None, failure(exception_type_name(exc), str(exc), traceback.format_exc())


def _binds(func: Callable[..., Any], ctx: dict[str, Any], args: dict[str, Any]) -> bool:
    try:
        inspect.signature(func).bind(ctx, **args)
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): assume it binds
        return True
    return True
