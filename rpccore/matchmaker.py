"""The matchmaker plugin interface (a public contract: docs/plugins.rst).

A matchmaker tells a brokerless driver (zmq) which hosts consume a topic.
Third parties ship one by declaring an entry point in the
``rpccore.matchmakers`` namespace; ``rpccore.testing.MatchMakerConformance``
is the suite their own tests should pass.
"""

from __future__ import annotations

import abc

from oslo_config import cfg


class MatchMaker(abc.ABC):
    """Base class of every matchmaker.

    :param conf: the application's ``oslo_config.cfg.ConfigOpts``
    :param group: the cell's option group name (``"cell:edge"``); the
        matchmaker's own :meth:`options` are registered there before it is
        built, so ``conf[group].my_option`` works.

    Hosts are strings the zmq driver can connect to, optionally ``host:port``.
    Every method may be called from several threads at once.
    """

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        self.conf = conf
        self.group = group

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """oslo.config options this matchmaker adds to the cell's group."""
        return []

    @abc.abstractmethod
    def register(self, topic: str, host: str) -> None:
        """Record that ``host`` consumes ``topic``.

        Called when a server starts and again every heartbeat interval, so a
        matchmaker whose records expire keeps them fresh. Idempotent.

        :raises rpccore.TransportError: the registry is unreachable. The driver
            logs it and tries again at the next heartbeat. A matchmaker may
            instead keep the registration and write it once the registry is
            back, provided it does not block.
        """

    @abc.abstractmethod
    def unregister(self, topic: str, host: str) -> None:
        """Forget that ``host`` consumes ``topic`` (a clean server stop).

        Unregistering an unknown pair is not an error.

        :raises rpccore.TransportError: the registry is unreachable.
        """

    @abc.abstractmethod
    def lookup(self, topic: str) -> list[str]:
        """The hosts consuming ``topic``; ``[]`` if none.

        Never blocks for long: a matchmaker whose backend is unreachable
        answers from what it last knew.

        :raises rpccore.TransportError: nothing is known and the backend is
            unreachable.
        """

    def close(self) -> None:
        """Release connections and threads. Idempotent."""
