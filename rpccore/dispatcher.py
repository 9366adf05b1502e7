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


def parse_version(version: str) -> tuple[int, int]:
    """``"2.3"`` -> ``(2, 3)``.

    :raises ValueError: not of the form ``MAJOR.MINOR`` (non-negative integers).
    """
    if type(version) is not str:
        raise ValueError(f"a version is a string 'MAJOR.MINOR', not {version!r}")
    major, dot, minor = version.partition(".")
    if not (dot and major.isdigit() and minor.isdigit() and major.isascii()
            and minor.isascii()):
        raise ValueError(f"a version is 'MAJOR.MINOR' (e.g. '2.3'), not {version!r}")
    return int(major), int(minor)


def version_compatible(available: str, wanted: str) -> bool:
    """Whether an endpoint at version ``available`` can serve ``wanted``:
    the same major, and a minor at least as high."""
    have, want = parse_version(available), parse_version(wanted)
    return have[0] == want[0] and have[1] >= want[1]


def endpoint_version(endpoint: object) -> str:
    return getattr(endpoint, "rpc_version", None) or "1.0"


def endpoint_namespace(endpoint: object) -> str | None:
    return getattr(endpoint, "rpc_namespace", None)


_Key = tuple[str, str | None, str]  # method, namespace, version


class Dispatcher:
    """Finds and runs endpoint methods.

    A method ``name`` of a message in namespace ``ns`` at version ``M.N`` is
    the first public (not ``_``-prefixed) callable attribute ``name`` among
    the endpoints, in order, whose ``rpc_namespace`` is ``ns`` and whose
    ``rpc_version`` has major ``M`` and a minor of at least ``N``. It is
    called as ``method(ctx, **args)``.

    :raises ValueError: an endpoint declares a malformed ``rpc_version``.
    """

    def __init__(self, endpoints: Iterable[object]) -> None:
        self._endpoints = list(endpoints)
        for endpoint in self._endpoints:
            parse_version(endpoint_version(endpoint))
        self._methods: dict[_Key, Callable[..., Any] | Failure] = {}

    def versions(self) -> dict[str, str]:
        """The highest version of each namespace (``""``: no namespace), as
        a server announces them (``ping``)."""
        found: dict[str, tuple[int, int]] = {}
        for endpoint in self._endpoints:
            ns = endpoint_namespace(endpoint) or ""
            version = parse_version(endpoint_version(endpoint))
            if ns not in found or version > found[ns]:
                found[ns] = version
        return {ns: f"{v[0]}.{v[1]}" for ns, v in found.items()}

    def _find(self, key: _Key) -> Callable[..., Any] | Failure:
        try:
            return self._methods[key]
        except KeyError:
            pass
        name, namespace, version = key
        found: Callable[..., Any] | Failure = failure(
            "rpccore.NoSuchMethod",
            f"no endpoint has a public method {name!r}"
            + (f" in namespace {namespace!r}" if namespace is not None else ""))
        if not name.startswith("_"):
            seen: list[str] = []
            for endpoint in self._endpoints:
                if endpoint_namespace(endpoint) != namespace:
                    continue
                candidate = getattr(endpoint, name, None)
                if not callable(candidate):
                    continue
                have = endpoint_version(endpoint)
                try:
                    compatible = version_compatible(have, version)
                except ValueError as exc:
                    found = failure("rpccore.UnsupportedVersion", str(exc))
                    break
                if compatible:
                    found = candidate
                    break
                seen.append(have)
            else:
                if seen:
                    found = failure(
                        "rpccore.UnsupportedVersion",
                        f"{name}() is served at version {', '.join(seen)}, "
                        f"not compatible with {version}")
        if len(self._methods) < 10_000:  # unknown names from strangers must not grow it forever
            self._methods[key] = found
        return found

    def dispatch(self, ctx: dict[str, Any], method: str, args: dict[str, Any],
                 namespace: str | None = None,
                 version: str = "1.0") -> tuple[Any, Failure | None]:
        """Run ``method``; return ``(result, None)`` or ``(None, failure)``.

        Never raises for the request's sake: an unknown method, an
        incompatible version, wrong arguments or an exception in the
        endpoint become a failure. A generator method's result is the
        generator itself (the server streams it or collects it).
        """
        key = (method, namespace, version)
        func = self._methods.get(key)  # found before: no call of _find
        if func is None:
            func = self._find(key)
        if type(func) is dict:
            return None, func
        assert callable(func)
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
