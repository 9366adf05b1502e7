"""``rpccore.aio.RPC``: the public entry point for asyncio code (docs/asyncio.rst).

One asyncio ``RPC`` is a threaded :class:`rpccore.RPC` (its cells, drivers,
envelopes, reply handling and servers) plus what keeps the event loop free:
send threads for every driver call that may block, and awaitable waiters
that the cells' reply handlers wake through the loop's inbox.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from oslo_config import cfg

from rpccore.aio.calls import await_reply, call_result, gather_replies, intercepted, start_request
from rpccore.aio.client import Client
from rpccore.aio.inbox import LoopInbox
from rpccore.aio.server import LoopServer, Server
from rpccore.aio.stream import AsyncStreamReader
from rpccore.aio.threads import SendThreads, in_own_thread, off_loop
from rpccore.aio.waiters import AsyncReplyQueue
from rpccore.cell import Cell
from rpccore.client import Client as CoreClient
from rpccore.destination import Destination, as_destination, make_destination, served_destination
from rpccore.errors import InvalidDestination, RPCError
from rpccore.interceptors import Interceptor, InterceptorChain
from rpccore.message import Context, new_id
from rpccore.rpc import RPC as ThreadedRPC
from rpccore.waiting import send_cast

T = TypeVar("T")

#: default most send threads per cell (see :mod:`rpccore.aio.threads`)
SEND_THREADS = 64
#: most threads sending stream credit and the replies of async methods
QUICK_THREADS = 16


class RPC:
    """Casts, calls, streams and servers across cells, for asyncio code.

    :param conf: as for :class:`rpccore.RPC` (``None``: the single in-memory
        ``default`` cell).
    :param interceptors: as for :class:`rpccore.RPC`: they see what this
        object sends and what its servers dispatch, asyncio or not.
    :param send_threads: most threads that run one cell's driver sends at
        once (see :mod:`rpccore.aio.threads`: at most eight of them on sends
        that are quick, the others on sends that take long, such as those
        that wait for a broker coming back).

    Every method takes the same arguments and raises the same errors as
    :class:`rpccore.RPC`'s. Nothing connects until a cell is first used;
    nothing that may block (driver I/O) runs on the event loop's thread.
    Use it from any number of tasks, and from several loops if need be.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None, *,
                 interceptors: Iterable[Interceptor] | None = None,
                 send_threads: int = SEND_THREADS) -> None:
        self._setup(ThreadedRPC(conf, interceptors=interceptors), True, send_threads)

    @classmethod
    def from_rpc(cls, rpc: ThreadedRPC, *, send_threads: int = SEND_THREADS) -> RPC:
        """An asyncio ``RPC`` over an existing threaded one: the same cells,
        connections and counters, for a process with threaded and asyncio
        code. :meth:`close` then leaves ``rpc`` open (its owner closes it).
        """
        self = cls.__new__(cls)
        self._setup(rpc, False, send_threads)
        return self

    def _setup(self, rpc: ThreadedRPC, owned: bool, send_threads: int) -> None:
        if send_threads < 1:
            raise ValueError(f"send_threads must be 1 or more, not {send_threads}")
        self.threaded = rpc
        self._owned = owned
        self._send_threads = send_threads
        #: each cell's send threads: a broker restarting in one cell never
        #: holds up sends to another
        self._pools: dict[str, SendThreads] = {}
        #: what must never wait behind sends that a busy backend holds up:
        #: stream credit and cancels, and the
        #: replies and acknowledgements of async methods (which make the
        #: room those requests wait for)
        self._quick_threads = SendThreads(QUICK_THREADS, name="rpccore-aio-quick")
        self._servers: list[Server] = []
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopInbox] = (
            weakref.WeakKeyDictionary())
        self._last: LoopInbox | None = None
        self._closed = False

    # -- plumbing ------------------------------------------------------------

    def _inbox(self) -> LoopInbox:
        """The inbox of the running loop (made on first use)."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last.loop is loop:
            return last
        inbox = self._inboxes.get(loop)
        if inbox is None:
            inbox = self._inboxes[loop] = LoopInbox(loop)
        self._last = inbox
        return inbox

    def _sender(self, cell: Cell) -> SendThreads:
        """The send threads of ``cell``."""
        if self._closed:
            raise RPCError("this RPC object is closed")
        pool = self._pools.get(cell.name)
        if pool is None:
            pool = self._pools.setdefault(cell.name, SendThreads(
                self._send_threads, name=f"rpccore-aio-{cell.name}"))
        return pool

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on a thread of its own, awaited (rare, blocking
        work that must not queue behind sends)."""
        return await in_own_thread(self._inbox(), fn, *args)

    # -- cells ---------------------------------------------------------------

    @property
    def conf(self) -> cfg.ConfigOpts:
        return self.threaded.conf

    @property
    def default_cell(self) -> str:
        name: str = self.threaded.default_cell
        return name

    @property
    def cell_names(self) -> list[str]:
        return self.threaded.cell_names

    def add_cell(self, name: str, transport_url: str, **options: Any) -> None:
        """See :meth:`rpccore.RPC.add_cell` (nothing connects: no need to await)."""
        self.threaded.add_cell(name, transport_url, **options)

    async def remove_cell(self, name: str) -> None:
        """Stop this object's servers in the cell and close its driver.

        :raises InvalidDestination: no such cell.
        """
        if name not in self.threaded.cell_names:
            raise InvalidDestination(f"unknown cell {name!r}")
        cell = self.threaded.cell(name)
        for server in [s for s in self._servers if s.cell is cell]:
            self._servers.remove(server)
            await server.stop()
        await self._in_thread(self.threaded.remove_cell, name)
        pool = self._pools.pop(name, None)
        if pool is not None:
            pool.close()

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters of every cell used so far, by cell name."""
        return self.threaded.stats()

    # -- messaging -----------------------------------------------------------

    @staticmethod
    def make_destination(topic: str, host: str | None = None, cell: str | None = None,
                         fanout: bool = False) -> Destination:
        """See :func:`rpccore.make_destination`."""
        return make_destination(topic, host, cell, fanout)

    async def cast(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
                   confirm: bool = False) -> None:
        """Send ``message``; return once the driver has taken it (with
        ``confirm``, once the backend has: see :meth:`rpccore.RPC.cast`).

        :raises InvalidDestination, InvalidMessage, ConfigError: before sending.
        :raises TransportError, Undeliverable: from the driver.
        """
        cell, dest, _, body, _, sending = self.threaded._outgoing("cast", ctx, dest, message,
                                                                   None)
        await intercepted(sending, off_loop(self._sender(cell), self._inbox(), send_cast, cell,
                                            dest, body, confirm))

    async def call(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
                   timeout: float | None = None, heartbeat: float | None = None) -> Any:
        """Send ``message`` and return the endpoint's return value (for a
        generator method, the list of what it yields). Cancelling the task
        abandons the call (a late reply is dropped and counted), as does
        ``asyncio.timeout()``.

        :param timeout: seconds; default the cell's ``rpc_response_timeout``.
        :param heartbeat: seconds (see :meth:`rpccore.RPC.call`).
        :raises Timeout: no reply in time, or the server went silent.
        :raises RemoteError: the endpoint raised, or no such method.
        :raises Undeliverable: nobody consumes ``dest`` (where the backend can tell).
        :raises TransportError: the backend is unreachable.
        :raises InvalidDestination, InvalidMessage, ConfigError: before sending.
        """
        cell, dest, msg_id, body, timeout, sending = self.threaded._call_outgoing(
            ctx, dest, message, timeout, heartbeat)
        return await intercepted(sending, call_result(
            self._sender(cell), self._inbox(), cell, dest, msg_id, body, timeout, heartbeat))

    def stream(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> AsyncStreamReader:
        """Call a generator method and iterate over what it yields, as it
        yields: ``async for item in rpc.stream(...)`` (the request is sent
        at once; call it from a coroutine).

        :param timeout: the longest wait for each item (default: the cell's
            ``rpc_response_timeout``).
        :raises: what :meth:`call` raises, from the iteration.
        """
        cell, dest, msg_id, body, timeout, window, sending = self.threaded._stream_outgoing(
            ctx, dest, message, timeout)
        inbox = self._inbox()
        queue = cell.pending_calls.add(msg_id, AsyncReplyQueue(inbox))
        reader = AsyncStreamReader(cell, msg_id, queue, timeout, window, new_id, str(dest),
                                   self._quick_threads)
        reader.sending = sending
        try:
            start_request(self._sender(cell), cell, dest, body, time.monotonic() + timeout,
                          queue)
        except RPCError as exc:
            reader._finish(exc)
            raise
        return reader

    async def gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any],
                     *, timeout: float | None = None) -> list[tuple[str, Any]]:
        """Call every server of a topic's fanout; collect what comes back
        within ``timeout`` (see :meth:`rpccore.RPC.gather`)."""
        return await self._gather(ctx, dest, message, timeout)

    async def _gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any],
                      timeout: float | None, **extra: Any) -> list[tuple[str, Any]]:
        cell, dest, msg_id, body, timeout, sending = self.threaded._gather_outgoing(
            ctx, dest, message, timeout, **extra)
        return await intercepted(sending, gather_replies(
            self._sender(cell), self._inbox(), cell, dest, msg_id, body, timeout))

    async def ping(self, dest: Destination | str, timeout: float | None = None) -> Any:
        """Ask a server about itself (see :meth:`rpccore.RPC.ping`); a fanout
        ``dest`` returns ``(host, dict)`` of every server that answered."""
        message = {"method": "ping", "args": {}}
        if isinstance(dest, Destination) and dest.fanout:
            return await self._gather({}, dest, message, timeout, sys="ping")
        cell, dest, msg_id, body, timeout = self.threaded._request(
            "call", {}, dest, message, timeout, sys="ping")
        assert timeout is not None
        reply = await await_reply(self._sender(cell), self._inbox(), cell, dest, msg_id, body,
                                  timeout)
        return reply.get("result")

    def client(self, dest: Destination | str, *, version_cap: str | None = None,
               timeout: float | None = None, namespace: str | None = None) -> Client:
        """A :class:`rpccore.aio.Client` for ``dest`` (see :meth:`rpccore.RPC.client`)."""
        return Client(self, CoreClient(self.threaded, as_destination(dest),
                                       version_cap=version_cap, timeout=timeout,
                                       namespace=namespace))

    def serve(self, dest: Destination | str, endpoints: Iterable[object], *,
              workers: int | None = None,
              interceptors: Iterable[Interceptor] | None = None) -> Server:
        """A :class:`rpccore.aio.Server` of ``endpoints`` at ``dest`` (not
        started: ``await server.start()``).

        ``async def`` methods run on the loop that starts the server, plain
        ones on ``workers`` threads (default: the cell's ``server_workers``;
        0: on the driver's delivering thread), async generator methods stream.
        ``interceptors``: run around this server's dispatch, after this
        object's own (see :mod:`rpccore.interceptors`).

        :raises InvalidDestination: fanout destination, unknown cell.
        :raises ValueError: ``workers`` is negative.
        """
        dest = served_destination(dest)
        if self._closed:
            raise RPCError("this RPC object is closed")
        core = LoopServer(self.threaded.cell(dest.cell), dest, endpoints, workers,
                          self._quick_threads, InterceptorChain.of(
                              self.threaded.interceptors, list(interceptors or ())))
        server = Server(core, self._inbox)
        self._servers.append(server)
        return server

    async def close(self) -> None:
        """Stop this object's servers (waiting for the requests they took)
        and close every cell (unless made by :meth:`from_rpc`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        servers, self._servers = self._servers, []
        await asyncio.gather(*(server.stop(timeout=10) for server in servers
                               if server.running))
        if self._owned:
            await self._in_thread(self.threaded.close)
        for pool in self._pools.values():
            pool.close()
        self._quick_threads.close()

    async def __aenter__(self) -> RPC:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
