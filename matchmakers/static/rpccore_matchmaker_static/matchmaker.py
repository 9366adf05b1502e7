"""StaticMatchMaker: the topic-to-hosts map comes from the cell's options."""

from __future__ import annotations

import logging

from oslo_config import cfg

from rpccore.errors import ConfigError
from rpccore.matchmaker import MatchMaker
from rpccore_matchmaker_static.hostmap import HostMap, check_host

LOG = logging.getLogger(__name__)

OPTIONS: list[cfg.Opt] = [
    cfg.Opt("static_hosts", type=HostMap(), default={},
            help="Hosts of each topic, as TOPIC:HOST[;HOST...] pairs separated by "
                 "',' (compute:127.0.0.2;127.0.0.3:9600, scheduler:10.0.0.1), or as a "
                 "JSON object {\"topic\": [\"host\", ...]} for topics containing ',' "
                 "or ':'. A host is HOST or HOST:PORT (default port: zmq_port). A "
                 "topic listed with no hosts has none, whatever default_hosts says."),
    cfg.ListOpt("default_hosts", default=[],
                help="Hosts of every topic not in static_hosts. Empty: such topics "
                     "have no hosts."),
]


class StaticMatchMaker(MatchMaker):
    """A read-only matchmaker configured with ``static_hosts`` and
    ``default_hosts``.

    ``lookup(topic)`` returns ``static_hosts[topic]`` when the topic is listed
    there, else ``default_hosts``. With neither option set every look-up
    returns ``[]``. The options are read once, when the matchmaker is built.

    :raises rpccore.ConfigError: (from the constructor) a host in
        ``default_hosts`` is empty or contains whitespace or ``;``.
    """

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        options = conf[group]
        self._hosts: dict[str, tuple[str, ...]] = {
            topic: tuple(hosts) for topic, hosts in options.static_hosts.items()}
        try:
            self._default: tuple[str, ...] = tuple(dict.fromkeys(
                check_host(h, "<default_hosts>") for h in options.default_hosts))
        except ValueError as exc:
            raise ConfigError(f"[{group}] default_hosts: {exc}") from None
        LOG.debug("[%s] static matchmaker: %d topics, %d default hosts",
                  group, len(self._hosts), len(self._default))

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """``static_hosts`` and ``default_hosts``."""
        return OPTIONS

    def register(self, topic: str, host: str) -> None:
        """Does nothing: the hosts come from configuration only (read-only).

        A server started on a host that the configuration does not list for
        its topic still gets host-directed messages, but no topic ones.
        """

    def unregister(self, topic: str, host: str) -> None:
        """Does nothing: the hosts come from configuration only (read-only)."""

    def lookup(self, topic: str) -> list[str]:
        """The configured hosts of ``topic`` (a new list); never raises."""
        hosts = self._hosts.get(topic)
        return list(self._default if hosts is None else hosts)

    def close(self) -> None:
        """Nothing to release."""
