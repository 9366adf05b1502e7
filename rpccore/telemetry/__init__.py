"""OpenTelemetry tracing and metrics for rpccore, on when it is installed.

With ``opentelemetry-api`` installed (``pip install rpccore[otel]``) every
``RPC`` object puts :class:`~rpccore.telemetry.tracing.OpenTelemetryInterceptor`
first among its interceptors: spans and metrics go to the global tracer and
meter providers (whatever the application, or ``opentelemetry-instrument``,
configures; nothing is recorded until it does). ``[rpccore] opentelemetry =
false`` turns it off. Without OpenTelemetry installed this module imports
nothing of it and rpccore runs exactly as before.

- :mod:`rpccore.telemetry.tracing`: the interceptor (spans, durations);
- :mod:`rpccore.telemetry.naming`: span names and attributes;
- :mod:`rpccore.telemetry.metrics`: the instruments, and ``rpc.stats()`` as
  observable counters.

See docs/observability.rst.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TYPE_CHECKING

from oslo_config import cfg

if TYPE_CHECKING:
    from rpccore.interceptors import Interceptor
    from rpccore.stats import StatsSource

LOG = logging.getLogger(__name__)

#: whether ``opentelemetry-api`` can be imported (``None``: not checked yet)
_installed: bool | None = None


def installed() -> bool:
    """Whether ``opentelemetry-api`` is installed (checked once, without
    importing it when it is not)."""
    global _installed
    if _installed is None:
        # find_spec of the top-level name imports nothing; only then the API
        if importlib.util.find_spec("opentelemetry") is None:
            _installed = False
        else:
            try:
                import opentelemetry.trace  # noqa: F401
            except ImportError:
                _installed = False
            else:
                _installed = True
    return _installed


def default_interceptors(rpc: StatsSource, conf: cfg.ConfigOpts) -> list[Interceptor]:
    """The interceptors every ``RPC`` starts with: OpenTelemetry's, when it
    is installed and ``[rpccore] opentelemetry`` is on; else none."""
    if not conf.rpccore.opentelemetry or not installed():
        return []
    try:
        from rpccore.telemetry.tracing import OpenTelemetryInterceptor
    except ImportError as exc:  # an API too old for what rpccore uses
        LOG.warning("OpenTelemetry is installed but rpccore cannot use it (%s); "
                    "no traces or metrics", exc)
        return []
    from rpccore.telemetry.metrics import watch_stats
    watch_stats(rpc)
    return [OpenTelemetryInterceptor()]


__all__ = ["installed", "default_interceptors"]
