"""Building ``RPC`` objects for tests, and closing them afterwards.

:func:`single_cell_rpc` is the one line a test needs for an ``RPC`` whose
default cell is a given transport URL (instead of building an ``RPC``,
removing its default cell and adding one). :class:`RPCFactory` makes such
objects and closes every one of them at the end of a test; the pytest
plugin (:mod:`rpccore.testing.pytest_plugin`) hands one to each test that
asks for the ``rpc_factory`` fixture.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore.rpc import RPC

if TYPE_CHECKING:
    from rpccore.interceptors import Interceptor

LOG = logging.getLogger(__name__)


def single_cell_rpc(url: str = "memory://", *, cell: str | None = None,
                    conf: cfg.ConfigOpts | None = None,
                    interceptors: Iterable[Interceptor] | None = None,
                    **options: Any) -> RPC:
    """An ``RPC`` (with a fresh ``ConfigOpts``, no config files, unless
    ``conf`` is given) whose only cell, and default cell, is ``url``.

    :param url: the cell's ``transport_url``. ``memory://`` alone gets a
        private in-memory exchange of its own (``memory:///test-<random>``),
        so tests never see each other's servers; name one
        (``memory:///shared``) to connect several objects.
    :param cell: the cell's name (default ``"default"``).
    :param conf: the configuration to build on (core options such as
        ``[rpccore] opentelemetry`` set on it beforehand).
    :param interceptors: passed to :class:`~rpccore.RPC`.
    :param options: cell options (``control_exchange="x"``, ``zmq_port=9501``...).
    :raises ConfigError: malformed URL or option value.
    """
    if url in ("memory://", "memory:///"):
        url = "memory:///test-" + os.urandom(6).hex()
    rpc = RPC(conf if conf is not None else cfg.ConfigOpts(), interceptors=interceptors)
    default = rpc.default_cell
    rpc.remove_cell(default)
    name = cell or default
    rpc.add_cell(name, url, **options)
    rpc.default_cell = name
    return rpc


class RPCFactory:
    """Makes single-cell ``RPC`` objects and closes them all in :meth:`close`.

    ``factory(url, cell=None, **options)`` is :func:`single_cell_rpc`;
    ``factory.wrap(rpc)`` takes any other ``RPC`` into its care. Options
    given to the constructor are defaults for every object it makes (a
    test-wide ``control_exchange``, say). Thread-safe.
    """

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self._made: list[RPC] = []
        self._lock = threading.Lock()

    def __call__(self, url: str = "memory://", *, cell: str | None = None,
                 **options: Any) -> RPC:
        return self.wrap(single_cell_rpc(url, cell=cell, **{**self.defaults, **options}))

    def wrap(self, rpc: RPC) -> RPC:
        """Close ``rpc`` with the others in :meth:`close`; returns it."""
        with self._lock:
            self._made.append(rpc)
        return rpc

    def close(self) -> None:
        """Close every object made or wrapped, newest first (servers before
        the clients that were built ahead of them). Never raises: a failure
        to close one is logged and the rest are still closed."""
        with self._lock:
            made, self._made = self._made, []
        for rpc in reversed(made):
            try:
                rpc.close()
            except Exception:
                LOG.exception("closing an RPC object made for a test failed")

    def __enter__(self) -> RPCFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
