"""``rpccore.aio.Client``: :class:`rpccore.Client` for asyncio code.

The settings, versions and checks are the threaded client's own (one is
kept inside); only what may wait is awaitable: ``call``, ``cast``,
``gather``, and ``can_send_version``, since ``version_cap="auto"`` pings
the topic's servers the first time it is asked (off the loop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rpccore.client import Client as CoreClient

if TYPE_CHECKING:
    from rpccore.aio.stream import AsyncStreamReader
    from rpccore.destination import Destination
    from rpccore.message import Context
    from rpccore.rpc import RPC as ThreadedRPC

_UNSET: Any = object()


class AsyncCaller(Protocol):
    """What a client needs of its :class:`rpccore.aio.RPC`: the four ways
    to send, the threaded core underneath, and a thread for blocking work."""

    threaded: ThreadedRPC

    async def call(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
                   timeout: float | None = None, heartbeat: float | None = None) -> Any:
        """Send a request and await its reply."""
        ...

    async def cast(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
                   confirm: bool = False) -> None:
        """Send a message with no reply."""
        ...

    def stream(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> AsyncStreamReader:
        """Send a request whose replies are a stream."""
        ...

    async def gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any],
                     *, timeout: float | None = None) -> list[tuple[str, Any]]:
        """Call every server of a fanout; collect the replies."""
        ...

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a thread of its own, awaited."""
        ...


class Client:
    """Calls and casts to one destination; built by :meth:`rpccore.aio.RPC.client`.

    Immutable; :meth:`prepare` returns a new one with some settings changed.
    """

    __slots__ = ("_rpc", "_core")

    def __init__(self, rpc: AsyncCaller, core: CoreClient) -> None:
        self._rpc = rpc
        self._core = core

    @property
    def destination(self) -> Destination:
        return self._core.destination

    @property
    def version(self) -> str | None:
        return self._core.version

    @property
    def version_cap(self) -> str | None:
        return self._core.version_cap

    @property
    def timeout(self) -> float | None:
        return self._core.timeout

    @property
    def namespace(self) -> str | None:
        return self._core.namespace

    @property
    def heartbeat(self) -> float | None:
        return self._core.heartbeat

    def prepare(self, *, version: str | None = _UNSET, host: str | None = _UNSET,
                cell: str | None = _UNSET, fanout: bool = _UNSET,
                timeout: float | None = _UNSET, namespace: str | None = _UNSET,
                heartbeat: float | None = _UNSET, version_cap: str | None = _UNSET) -> Client:
        """A new client with the given settings changed; this one is
        unchanged (see :meth:`rpccore.Client.prepare`).

        :raises InvalidMessage: a malformed version or namespace.
        """
        given: dict[str, Any] = {name: value for name, value in (
            ("version", version), ("host", host), ("cell", cell), ("fanout", fanout),
            ("timeout", timeout), ("namespace", namespace), ("heartbeat", heartbeat),
            ("version_cap", version_cap)) if value is not _UNSET}
        return Client(self._rpc, self._core.prepare(**given))

    async def _know_cap(self) -> None:
        """With ``version_cap="auto"``, discover the cap off the loop the
        first time (later, the core answers from its cache without
        waiting, refreshing it in the background)."""
        core = self._core
        if core.version_cap != "auto" or _cap_is_cached(self._rpc, core):
            return
        await self._rpc._in_thread(core.can_send_version, "1.0")

    async def can_send_version(self, version: str) -> bool:
        """Whether a message at ``version`` is within the cap (no cap: always).

        :raises InvalidMessage: ``version`` is not ``MAJOR.MINOR``.
        """
        await self._know_cap()
        return self._core.can_send_version(version)

    async def _message(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        await self._know_cap()
        return self._core._message(method, args)

    async def call(self, ctx: Context, method: str, **args: Any) -> Any:
        """``await rpc.call`` of ``method(**args)`` with this client's settings."""
        core = self._core
        return await self._rpc.call(ctx, core.destination, await self._message(method, args),
                                    timeout=core.timeout, heartbeat=core.heartbeat)

    async def cast(self, ctx: Context, method: str, **args: Any) -> None:
        """``await rpc.cast`` of ``method(**args)`` with this client's settings."""
        await self._rpc.cast(ctx, self._core.destination, await self._message(method, args))

    async def stream(self, ctx: Context, method: str, **args: Any) -> AsyncIterator[Any]:
        """``rpc.stream`` of a generator method with this client's settings:
        ``async for item in client.stream(ctx, "method", ...)``."""
        message = await self._message(method, args)
        reader = self._rpc.stream(ctx, self._core.destination, message,
                                  timeout=self._core.timeout)
        async with reader:  # however this ends, the server's generator stops
            async for item in reader:
                yield item

    async def gather(self, ctx: Context, method: str, **args: Any) -> list[tuple[str, Any]]:
        """``await rpc.gather`` over the topic's fanout with this client's settings."""
        return await self._rpc.gather(ctx, self._core.destination,
                                      await self._message(method, args),
                                      timeout=self._core.timeout)

    def __repr__(self) -> str:
        return f"rpccore.aio.{self._core!r}"


def _cap_is_cached(rpc: AsyncCaller, core: CoreClient) -> bool:
    """Whether the threaded core knows ``core``'s auto cap already, so that
    asking for it returns at once (only the first discovery of a topic's
    cap waits for the servers' answers)."""
    dest = core.destination
    key = (rpc.threaded.cell(dest.cell).name, dest.topic, core.namespace or "")
    return key in rpc.threaded.version_caps._caps
