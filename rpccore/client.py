"""``Client``: calls by method name at a version, under a version cap.

A control plane upgraded service by service has old and new servers behind
one topic for hours. Each message carries the version of the API it needs
(``prepare(version="2.3")``); a client capped at the version the oldest
server speaks (``version_cap``) refuses to send anything newer, so callers
fall back (``can_send_version``) instead of reaching a server that cannot
answer. ``version_cap="auto"`` finds that version by itself: see
:mod:`rpccore.version_cap`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rpccore.destination import Destination, make_destination
from rpccore.dispatcher import parse_version, version_compatible
from rpccore.errors import InvalidMessage, VersionCapError

if TYPE_CHECKING:
    from rpccore.message import Context
    from rpccore.stream_reader import StreamReader
    from rpccore.version_cap import VersionCaps

_UNSET: Any = object()


class Caller(Protocol):
    """What a client needs of its :class:`rpccore.RPC` (or any object that
    sends the same way): the four ways to send, and the discovered caps."""

    version_caps: VersionCaps

    def call(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
             timeout: float | None = None, heartbeat: float | None = None) -> Any:
        """Send a request and wait for its reply."""
        ...

    def cast(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
             confirm: bool = False) -> None:
        """Send a message with no reply."""
        ...

    def stream(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> StreamReader:
        """Send a request whose replies are a stream."""
        ...

    def gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> list[tuple[str, Any]]:
        """Send a request to every server of a fanout; collect the replies."""
        ...


class Client:
    """Calls and casts to one destination; built by :meth:`rpccore.RPC.client`.

    Immutable, so one client is safely shared by threads; :meth:`prepare`
    returns a new one with some settings changed (cheap: no I/O).
    """

    __slots__ = ("_rpc", "destination", "version", "version_cap", "timeout", "namespace",
                 "heartbeat")

    def __init__(self, rpc: Caller, dest: Destination, *, version: str | None = None,
                 version_cap: str | None = None, timeout: float | None = None,
                 namespace: str | None = None, heartbeat: float | None = None) -> None:
        for name, value in (("version", version), ("version_cap", version_cap)):
            if value is not None and not (name == "version_cap" and value == "auto"):
                try:
                    parse_version(value)
                except ValueError as exc:
                    raise InvalidMessage(f"{name}: {exc}") from None
        if namespace is not None and type(namespace) is not str:
            raise InvalidMessage(f"namespace must be a string, not {namespace!r}")
        self._rpc = rpc
        self.destination = dest
        self.version = version
        self.version_cap = version_cap
        self.timeout = timeout
        self.namespace = namespace
        self.heartbeat = heartbeat

    def prepare(self, *, version: str | None = _UNSET, host: str | None = _UNSET,
                cell: str | None = _UNSET, fanout: bool = _UNSET,
                timeout: float | None = _UNSET, namespace: str | None = _UNSET,
                heartbeat: float | None = _UNSET, version_cap: str | None = _UNSET) -> Client:
        """A new client with the given settings changed; this one is unchanged."""
        dest = self.destination
        if host is not _UNSET or cell is not _UNSET or fanout is not _UNSET:
            dest = make_destination(dest.topic,
                                    dest.host if host is _UNSET else host,
                                    dest.cell if cell is _UNSET else cell,
                                    dest.fanout if fanout is _UNSET else fanout)

        def pick(new: Any, old: Any) -> Any:
            return old if new is _UNSET else new

        return Client(self._rpc, dest, version=pick(version, self.version),
                      version_cap=pick(version_cap, self.version_cap),
                      timeout=pick(timeout, self.timeout),
                      namespace=pick(namespace, self.namespace),
                      heartbeat=pick(heartbeat, self.heartbeat))

    def _cap(self) -> str | None:
        if self.version_cap == "auto":
            return self._rpc.version_caps.cap(self.destination, self.namespace)
        return self.version_cap

    def can_send_version(self, version: str) -> bool:
        """Whether a message at ``version`` is within the cap (no cap: always).

        :raises InvalidMessage: ``version`` is not ``MAJOR.MINOR``.
        """
        try:
            parse_version(version)
        except ValueError as exc:
            raise InvalidMessage(str(exc)) from None
        cap = self._cap()
        return cap is None or version_compatible(cap, version)

    def _message(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"method": method, "args": args}
        version = self.version
        if version is not None:
            if not self.can_send_version(version):
                raise VersionCapError(
                    f"{method}() at version {version} is above the version cap "
                    f"{self._cap()} of {self.destination}")
            message["version"] = version
        if self.namespace is not None:
            message["namespace"] = self.namespace
        return message

    def call(self, ctx: Context, method: str, **args: Any) -> Any:
        """``rpc.call`` of ``method(**args)`` with this client's settings."""
        return self._rpc.call(ctx, self.destination, self._message(method, args),
                              timeout=self.timeout, heartbeat=self.heartbeat)

    def cast(self, ctx: Context, method: str, **args: Any) -> None:
        """``rpc.cast`` of ``method(**args)`` with this client's settings."""
        self._rpc.cast(ctx, self.destination, self._message(method, args))

    def stream(self, ctx: Context, method: str, **args: Any) -> StreamReader:
        """``rpc.stream`` of a generator method with this client's settings."""
        return self._rpc.stream(ctx, self.destination, self._message(method, args),
                                timeout=self.timeout)

    def gather(self, ctx: Context, method: str, **args: Any) -> list[tuple[str, Any]]:
        """``rpc.gather`` over the topic's fanout with this client's settings."""
        return self._rpc.gather(ctx, self.destination, self._message(method, args),
                                timeout=self.timeout)

    def __repr__(self) -> str:
        return (f"Client({self.destination}, version={self.version}, "
                f"version_cap={self.version_cap}, namespace={self.namespace})")
