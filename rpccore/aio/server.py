"""``rpccore.aio.Server``: the core's server, with an event loop for async methods.

Requests are received, opened, dispatched, answered and acknowledged by
:class:`rpccore.server.Server` exactly as for threaded servers (so
signing, replay checks, versions, keepalives, stream credit and whatever
else the core does there apply alike). Plain methods run on its worker
threads (``workers``, a bounded pool); an ``async def`` method's coroutine
becomes a task on the loop the server was started on, and its reply is
sent from a send thread once it is done; an async generator method
streams from the loop (:mod:`rpccore.aio.endpoints`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rpccore.aio.endpoints import items_from_loop, task_outcome
from rpccore.aio.inbox import LoopInbox, wake
from rpccore.aio.threads import SendThreads, in_own_thread
from rpccore.dispatcher import Failure, failure
from rpccore.errors import RPCError
from rpccore.server import Server as CoreServer

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.destination import Destination
    from rpccore.driver import Incoming
    from rpccore.interceptors import Dispatching, InterceptorChain
    from rpccore.responder import Responder

LOG = logging.getLogger(__name__)

#: an async method handed to the loop: its coroutine, and what answers it
_Request = tuple[Any, "Incoming", dict[str, Any], "Responder | None", "Dispatching | None"]


class LoopServer(CoreServer):
    """The core server with the seam :meth:`_loop_result` filled in: async
    methods run on :attr:`inbox`'s loop. Counts the requests running there
    so that :meth:`rpccore.aio.Server.stop` can wait for them.

    Each request runs in a context of its own (``contextvars``): what the
    interceptors set in it before dispatch (rpccore's tracing makes the
    server's span current) is there while an async method runs on the
    loop, and their end, once it was answered, runs in it again.
    """

    def __init__(self, cell: Cell, dest: Destination, endpoints: Iterable[object],
                 workers: int | None, threads: SendThreads,
                 interceptors: InterceptorChain | None = None) -> None:
        super().__init__(cell, dest, endpoints, workers, interceptors)
        self.threads = threads
        self.inbox: LoopInbox | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._count_lock = threading.Lock()
        self.in_flight = 0
        self._idle: asyncio.Future[None] | None = None
        #: the async method the running request handed over, per thread
        self._handed = threading.local()

    def _run(self, incoming: Incoming, env: dict[str, Any]) -> None:
        context = contextvars.copy_context()
        self._handed.request = None
        try:
            context.run(super()._run, incoming, env)
        finally:
            request: _Request | None = self._handed.request
            self._handed.request = None
        if request is not None:  # out of the context first: the loop enters it next
            self._hand_to_loop(request, context)

    def _loop_result(self, incoming: Incoming, env: dict[str, Any],
                     responder: Responder | None, dispatching: Dispatching | None,
                     result: Any) -> tuple[Any, Failure | None] | None:
        inbox = self.inbox
        if inbox is None or inbox.loop.is_closed():
            return super()._loop_result(incoming, env, responder, dispatching, result)
        if type(result) is types.AsyncGeneratorType:
            return items_from_loop(result, inbox.loop, self.cell.streams, env["id"]), None
        self._handed.request = (result, incoming, env, responder, dispatching)
        return None

    def _hand_to_loop(self, request: _Request, context: contextvars.Context) -> None:
        with self._count_lock:
            self.in_flight += 1
        inbox = self.inbox
        if inbox is None or not inbox.put(self._start, (request, context)):
            coro, incoming, env, responder, dispatching = request
            coro.close()
            self._reply(incoming, env, responder, dispatching, None,
                        failure("rpccore.Cancelled", "the server's event loop is closed"),
                        context)

    def _start(self, job: tuple[_Request, contextvars.Context]) -> None:
        """(On the loop) run an async method's coroutine as a task."""
        (coro, incoming, env, responder, dispatching), context = job
        task = asyncio.get_running_loop().create_task(coro, context=context)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._task_done, incoming, env, responder,
                                                 dispatching, context))

    def _task_done(self, incoming: Incoming, env: dict[str, Any], responder: Responder | None,
                   dispatching: Dispatching | None, context: contextvars.Context,
                   task: asyncio.Task[Any]) -> None:
        """(On the loop) hand the outcome to a quick thread: replying and
        acknowledging are driver I/O."""
        self._tasks.discard(task)
        result, fail = task_outcome(task)
        args = (incoming, env, responder, dispatching, result, fail, context)
        try:
            self.threads.submit(self._reply, *args)
        except RPCError:  # the RPC object was closed under us: a thread of its own
            threading.Thread(target=self._reply, args=args, daemon=True,
                             name="rpccore-aio-late-reply").start()

    def _reply(self, incoming: Incoming, env: dict[str, Any], responder: Responder | None,
               dispatching: Dispatching | None, result: Any, fail: Failure | None,
               context: contextvars.Context) -> None:
        try:
            context.run(self._finish, incoming, env, responder, dispatching, result, fail,
                        time.monotonic())
        except Exception:
            LOG.exception("answering %s() of %s failed", env.get("method"), self.destination)
        finally:
            self._done_one()

    def _done_one(self) -> None:
        with self._count_lock:
            self.in_flight -= 1
            idle = self.in_flight == 0 and self._idle is not None
        if idle and self.inbox is not None:
            self.inbox.put(self._wake_stopper, None)

    def _wake_stopper(self, _: None) -> None:
        if self._idle is not None and self.in_flight == 0:
            wake(self._idle)

    async def settled(self) -> None:
        """(On the loop) return once no async method runs or awaits its reply."""
        while self.in_flight:
            self._idle = asyncio.get_running_loop().create_future()
            if self.in_flight:
                await self._idle
        self._idle = None

    def cancel_tasks(self) -> None:
        """(On the loop) cancel the async methods still running."""
        for task in list(self._tasks):
            task.cancel()


class Server:
    """Serves endpoints at a destination, for asyncio applications; built by
    :meth:`rpccore.aio.RPC.serve`.

    ``await start()`` returns once the subscriptions exist (a message sent
    after it reaches the server). ``await stop()`` stops taking requests and
    returns once those already received have been answered.
    """

    def __init__(self, core: LoopServer, inbox_of: Callable[[], LoopInbox]) -> None:
        self._core = core
        self._inbox_of = inbox_of

    @property
    def destination(self) -> Destination:
        return self._core.destination

    @property
    def identity(self) -> Destination:
        """Where this very server is reached (its host filled in once started)."""
        return self._core.identity

    @property
    def cell(self) -> Cell:
        return self._core.cell

    @property
    def running(self) -> bool:
        return self._core.running

    async def start(self) -> Server:
        """Subscribe; async methods will run on the running loop.

        :raises TransportError: the backend could not be reached.
        :raises ConfigError: the cell's driver is not installed.
        :raises RuntimeError: started before.
        """
        inbox: LoopInbox = self._inbox_of()
        self._core.inbox = inbox
        await in_own_thread(inbox, self._core.start)
        return self

    async def stop(self, timeout: float | None = None) -> bool:
        """Stop taking requests; wait until those received were answered.

        :param timeout: seconds to wait at most; then async methods still
            running are cancelled (their callers get a ``RemoteError`` of
            type ``rpccore.Cancelled``).
        :returns: True when everything finished in time.
        """
        core = self._core
        inbox: LoopInbox = self._inbox_of()
        await in_own_thread(inbox, core.stop)
        end = None if timeout is None else time.monotonic() + timeout
        finished = await in_own_thread(inbox, core.wait, timeout)
        try:
            left = None if end is None else max(0.0, end - time.monotonic())
            await asyncio.wait_for(core.settled(), left)
        except TimeoutError:
            core.cancel_tasks()
            await core.settled()
            return False
        return bool(finished)

    def __repr__(self) -> str:
        return f"rpccore.aio.Server({self.destination}, running={self.running})"
