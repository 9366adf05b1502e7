"""RingMatchMaker: topic-to-hosts from a JSON ring file, reloaded on change."""

from __future__ import annotations

import logging
import threading

from oslo_config import cfg

from rpccore.errors import ConfigError
from rpccore.matchmaker import MatchMaker
from rpccore_matchmaker_ring.ringfile import FileSignature, Ring, RingFileError, read_ring

LOG = logging.getLogger(__name__)

OPTIONS: list[cfg.Opt] = [
    cfg.StrOpt("ringfile",
               help='JSON file {"topic": ["host", "host:port", ...]} naming the hosts '
                    "of each topic; re-read when it changes (replace it atomically, "
                    "e.g. write a temporary file and rename it). A topic not in the "
                    "file has no hosts."),
]


class RingMatchMaker(MatchMaker):
    """A read-only matchmaker whose hosts come from the ``ringfile`` option.

    Every :meth:`lookup` checks the file's size, times and inode (one
    ``stat()``); when they changed it re-reads the file. A file that is
    malformed, unreadable or gone is logged once per version (an error naming
    the file and, for syntax errors, line and column) and the last good ring
    stays in use; :attr:`last_error` holds the problem until a good version
    is read.

    :raises rpccore.ConfigError: (constructor) ``ringfile`` is not set;
        :class:`RingFileError` (a ``ConfigError``) if the file cannot be read
        or is malformed when the matchmaker is built.
    """

    def __init__(self, conf: cfg.ConfigOpts, group: str) -> None:
        super().__init__(conf, group)
        path = conf[group].ringfile
        if not path:
            raise ConfigError(f"[{group}] matchmaker 'ring' needs the option ringfile")
        self.path: str = path
        self._lock = threading.Lock()
        self._ring: Ring
        self._signature: FileSignature | None
        self._ring, self._signature = read_ring(path)
        self._failed_signature: FileSignature | None = None
        self.last_error: RingFileError | None = None
        LOG.info("[%s] ring file %s: %d topics", group, path, len(self._ring))

    @classmethod
    def options(cls) -> list[cfg.Opt]:
        """``ringfile``."""
        return OPTIONS

    def register(self, topic: str, host: str) -> None:
        """Does nothing: the hosts come from the ring file only (read-only)."""

    def unregister(self, topic: str, host: str) -> None:
        """Does nothing: the hosts come from the ring file only (read-only)."""

    def lookup(self, topic: str) -> list[str]:
        """The ring's hosts of ``topic`` (``[]`` when absent), after re-reading
        the file if it changed. Never raises for a bad file: see the class."""
        self.refresh()
        return list(self._ring.get(topic, ()))

    @property
    def ring(self) -> Ring:
        """The ring in use (topic to hosts)."""
        return dict(self._ring)

    def refresh(self) -> bool:
        """Re-read the file if it changed since it was last read.

        :returns: True if a new good ring is now in use.
        """
        try:
            signature = FileSignature.of(self.path)
        except OSError as exc:
            return self._failed(None, RingFileError(
                self.path, f"cannot be read: {exc.strerror or exc}"))
        if signature == self._signature or signature == self._failed_signature:
            return False
        with self._lock:
            if signature == self._signature:  # another thread reloaded it
                return False
            try:
                ring, read_signature = read_ring(self.path)
            except RingFileError as exc:
                return self._failed(signature, exc)
            self._ring, self._signature = ring, read_signature
            self._failed_signature, self.last_error = None, None
        LOG.info("[%s] ring file %s reloaded: %d topics", self.group, self.path, len(ring))
        return True

    def _failed(self, signature: FileSignature | None, exc: RingFileError) -> bool:
        # Log each bad version once; a missing file (signature None) once
        # until it comes back.
        if self.last_error is None or signature != self._failed_signature:
            LOG.error("[%s] %s; keeping the previous ring (%d topics)",
                      self.group, exc, len(self._ring))
        self._failed_signature, self.last_error = signature, exc
        if signature is None:
            self._signature = None  # so the same file coming back is re-read
        return False

    def close(self) -> None:
        """Nothing to release."""
