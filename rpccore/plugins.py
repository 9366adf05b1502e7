"""Finding drivers and matchmakers through stevedore entry points."""

from __future__ import annotations

import difflib
import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from stevedore import driver as sv_driver
from stevedore import extension as sv_extension

from rpccore.errors import ConfigError

LOG = logging.getLogger(__name__)

DRIVER_NAMESPACE = "rpccore.drivers"
MATCHMAKER_NAMESPACE = "rpccore.matchmakers"

#: Plugins this project ships, with the distribution that provides each.
KNOWN_DISTRIBUTIONS = {
    (DRIVER_NAMESPACE, "rabbit"): "rpccore-rabbit",
    (DRIVER_NAMESPACE, "qpid"): "rpccore-qpid",
    (DRIVER_NAMESPACE, "zmq"): "rpccore-zmq",
    (DRIVER_NAMESPACE, "nats"): "rpccore-nats",
    (MATCHMAKER_NAMESPACE, "ring"): "rpccore-matchmaker-ring",
    (MATCHMAKER_NAMESPACE, "redis"): "rpccore-matchmaker-redis",
    (MATCHMAKER_NAMESPACE, "static"): "rpccore-matchmaker-static",
}

#: Where each of our distributions lives in a checkout of this repository.
_FOLDERS = {dist: f"{ns.split('.')[-1]}/{name}" for (ns, name), dist in
            KNOWN_DISTRIBUTIONS.items()}

_cache: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()
#: plugins put in place by tests without installing a distribution
#: (:func:`inject`); they take precedence over entry points
_injected: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin, for ``rpccore plugins``."""

    namespace: str
    name: str
    target: str
    distribution: str
    version: str
    error: str | None = None


def _not_installed(namespace: str, name: str, kind: str) -> ConfigError:
    installed = sorted(ep.name for ep in metadata.entry_points(group=namespace))
    dist = KNOWN_DISTRIBUTIONS.get((namespace, name))
    text = f"no {kind} named {name!r} is installed"
    if dist:
        text += (f": install it with 'pip install {dist}' (from a checkout of rpccore: "
                 f"pip install ./{_FOLDERS.get(dist, dist)})")
    else:
        close = difflib.get_close_matches(name, installed, n=1)
        if close:
            text += f"; did you mean {close[0]!r}?"
    return ConfigError(text + f" (installed {kind}s: {', '.join(installed) or 'none'})")


def inject(namespace: str, name: str, plugin: Any) -> None:
    """Make ``plugin`` the plugin ``name`` of ``namespace`` in this process,
    as if a distribution declared it (stevedore's ``make_test_instance``, for
    rpccore's loaders); used by :func:`rpccore.testing.plugin_installed`.

    :raises ValueError: a plugin of that name is injected already.
    """
    key = (namespace, name)
    with _lock:
        if key in _injected:
            raise ValueError(f"a plugin {name!r} is injected in {namespace} already")
        _injected[key] = plugin


def withdraw(namespace: str, name: str) -> None:
    """Undo :func:`inject` (nothing happens when it is not injected)."""
    with _lock:
        _injected.pop((namespace, name), None)


def _load(namespace: str, name: str, kind: str) -> Any:
    key = (namespace, name)
    with _lock:
        if key in _injected:
            return _injected[key]
        if key in _cache:
            return _cache[key]
    if not any(ep.name == name for ep in metadata.entry_points(group=namespace)):
        raise _not_installed(namespace, name, kind)
    try:
        manager: Any = sv_driver.DriverManager(namespace, name, invoke_on_load=False)
    except Exception as exc:  # stevedore raises NoMatches, or the import error
        if "No '" in str(exc) or type(exc).__name__ == "NoMatches":
            raise _not_installed(namespace, name, kind) from None
        raise ConfigError(f"the {kind} {name!r} failed to load: {exc}") from exc
    with _lock:
        _cache[key] = manager.driver
    return manager.driver


def load_driver(name: str) -> Any:
    """The :class:`rpccore.Driver` subclass registered as ``name``.

    :raises ConfigError: not installed (naming the distribution to install
        when it is one of ours) or broken.
    """
    return _load(DRIVER_NAMESPACE, name, "driver")


def load_matchmaker(name: str) -> Any:
    """The :class:`rpccore.MatchMaker` subclass registered as ``name``.

    :raises ConfigError: as :func:`load_driver`.
    """
    return _load(MATCHMAKER_NAMESPACE, name, "matchmaker")


def _describe(namespace: str) -> list[PluginInfo]:
    found: list[PluginInfo] = []
    errors: list[PluginInfo] = []

    def failed(_manager: Any, entrypoint: Any, exc: BaseException) -> None:
        errors.append(PluginInfo(namespace, entrypoint.name, entrypoint.value,
                                 _dist_name(entrypoint), _dist_version(entrypoint), str(exc)))

    manager: Any = sv_extension.ExtensionManager(
        namespace, invoke_on_load=False, on_load_failure_callback=failed)
    for ext in manager:
        found.append(PluginInfo(namespace, ext.name, ext.entry_point.value,
                                _dist_name(ext.entry_point), _dist_version(ext.entry_point)))
    return sorted(found + errors, key=lambda p: p.name)


def _distribution(entrypoint: Any) -> Any:
    # stevedore caches entry points without their distribution: ask importlib.
    dist = getattr(entrypoint, "dist", None)
    if dist is not None:
        return dist
    for candidate in metadata.entry_points(group=entrypoint.group, name=entrypoint.name):
        if candidate.value == entrypoint.value:
            return candidate.dist
    return None


def _dist_name(entrypoint: Any) -> str:
    dist = _distribution(entrypoint)
    return str(dist.name) if dist is not None else "?"


def _dist_version(entrypoint: Any) -> str:
    dist = _distribution(entrypoint)
    return str(dist.version) if dist is not None else "?"


def list_plugins() -> list[PluginInfo]:
    """Every installed driver and matchmaker (also ones that fail to import)."""
    return _describe(DRIVER_NAMESPACE) + _describe(MATCHMAKER_NAMESPACE)


def installed_plugin_classes() -> list[Any]:
    """The classes of every driver and matchmaker that imports cleanly
    (injected ones included)."""
    with _lock:
        classes = list(_injected.values())
    for namespace in (DRIVER_NAMESPACE, MATCHMAKER_NAMESPACE):
        manager: Any = sv_extension.ExtensionManager(namespace, invoke_on_load=False)
        for ext in manager:
            classes.append(ext.plugin)
    return classes
