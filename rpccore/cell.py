"""A cell: one named messaging domain with its own driver and options."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore import opts, plugins
from rpccore.errors import ConfigError
from rpccore.replies import PendingCalls
from rpccore.stats import CellStats
from rpccore.streaming import StreamRegistry
from rpccore.transport_url import TransportURL, parse_transport_url

if TYPE_CHECKING:
    from rpccore.driver import Driver
    from rpccore.matchmaker import MatchMaker

LOG = logging.getLogger(__name__)


class Cell:
    """Configuration, driver, counters and pending calls of one cell.

    Drivers receive their ``Cell``: see :class:`rpccore.Driver` for the
    attributes they may use. The driver is loaded (through stevedore) the
    first time it is needed, once, and then shared.

    :raises ConfigError: the transport URL is malformed.
    """

    def __init__(self, conf: cfg.ConfigOpts, name: str,
                 overrides: dict[str, Any] | None = None) -> None:
        self.conf = conf
        self.name = name
        self.group = opts.cell_group(name)
        opts.register_cell_opts(conf, name)
        # Options given to add_cell() and the URL's query parameters; those
        # naming plugin options wait until the plugin has registered them.
        self._pending: dict[str, Any] = dict(overrides or {})
        self._apply_overrides()
        self.url: TransportURL = parse_transport_url(self.options.transport_url)
        self._pending.update({k: v for k, v in self.url.query.items()
                              if k not in (overrides or {})})
        self._apply_overrides()
        self.stats = CellStats()
        self.pending_calls = PendingCalls(self)
        #: streams this process's servers of the cell are sending
        self.streams = StreamRegistry()
        self._driver: Driver | None = None
        self._driver_options = False  # the driver's options are registered
        self._lock = threading.Lock()
        self._closed = False
        key = self.options.secret_key
        self.secret_key: bytes | None = key.encode("utf-8") if key else None
        self.max_message_size: int = self.options.max_message_size
        self.rpc_response_timeout: float = self.options.rpc_response_timeout
        self.signed_message_ttl: float = self.options.signed_message_ttl

    @property
    def options(self) -> Any:
        """The cell's option group: ``cell.options.zmq_port``."""
        return self.conf[self.group]

    def _apply_overrides(self) -> None:
        group_opts = self.conf[self.group]
        for name in list(self._pending):
            if name in group_opts:
                value = self._pending.pop(name)
                try:
                    self.conf.set_override(name, value, group=self.group)
                except (ValueError, TypeError) as exc:
                    raise ConfigError(
                        f"cell {self.name!r}: bad value for option {name!r}: {exc}") from None

    def register_plugin_options(self, plugin_opts: list[cfg.Opt]) -> None:
        """Add a plugin's options to this cell's group, then apply overrides
        (``add_cell`` keywords, URL query parameters) that name them."""
        opts.register_plugin_opts(self.conf, self.group, plugin_opts)
        self._apply_overrides()

    @property
    def driver_name(self) -> str:
        return self.url.scheme

    @property
    def loaded(self) -> bool:
        return self._driver is not None

    def driver(self) -> Driver:
        """This cell's driver, loaded on first use.

        :raises ConfigError: the driver is not installed or its options are bad.
        """
        drv = self._driver
        if drv is not None:
            return drv
        with self._lock:
            if self._closed:
                raise ConfigError(f"cell {self.name!r} is closed")
            if self._driver is None:
                cls = plugins.load_driver(self.driver_name)
                self.register_plugin_options(cls.options())
                self._driver_options = True
                # A driver with a matchmaker leaves the rest to it (warned
                # about in load_matchmaker); otherwise nothing will use it.
                if "matchmaker" not in self.options:
                    self._warn_unused()
                for counter in getattr(cls, "counters", ()):
                    self.stats.incr(counter, 0)
                self._driver = cls(self)
                LOG.info("cell %s: loaded driver %s for %s", self.name,
                         self.driver_name, self.url)
            return self._driver

    def load_matchmaker(self, name: str) -> MatchMaker:
        """Build the matchmaker ``name`` for this cell (used by drivers).

        :raises ConfigError: not installed.
        """
        cls = plugins.load_matchmaker(name)
        self.register_plugin_options(cls.options())
        # Before the driver's own options exist (a matchmaker built ahead of
        # the driver), what is left may still be the driver's.
        if self._driver_options:
            self._warn_unused()
        matchmaker: MatchMaker = cls(self.conf, self.group)
        return matchmaker

    def _warn_unused(self) -> None:
        for name in sorted(self._pending):
            LOG.warning("cell %s: %r (from the transport URL or add_cell) is not an "
                        "option of driver %s or its matchmaker; ignored",
                        self.name, name, self.driver_name)
        self._pending.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            drv, self._driver = self._driver, None
        self.pending_calls.fail_all(f"cell {self.name!r} was closed")
        if drv is not None:
            try:
                drv.close()
            except Exception:
                LOG.exception("cell %s: closing driver %s failed", self.name, self.driver_name)
