"""``RPC``: the public entry point, one object talking to any number of cells."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

from rpccore import envelope, opts
from rpccore.cell import Cell
from rpccore.destination import (
    Destination,
    as_destination,
    make_destination,
    resolve,
    served_destination,
)
from rpccore.errors import ConfigError, InvalidDestination, InvalidMessage, RPCError
from rpccore.interceptors import Interceptor, InterceptorChain, Sending
from rpccore.message import Context, new_id, request_envelope
from rpccore.replies import ReplyQueue
from rpccore.server import Server
from rpccore.stream_reader import StreamReader
from rpccore.telemetry import default_interceptors
from rpccore.version_cap import VersionCaps
from rpccore.waiting import await_reply, call_result, gather_replies, send_cast, send_watched

if TYPE_CHECKING:
    from rpccore.client import Client
    from rpccore.notify import Listener, Notifier

LOG = logging.getLogger(__name__)

__all__ = ["RPC", "Context"]


class RPC:
    """Casts, calls and servers across cells.

    :param conf: an ``oslo_config.cfg.ConfigOpts``; rpccore registers its
        options in it. ``None``: a fresh one with no files, which gives the
        single ``default`` cell on the in-process memory driver.
    :param interceptors: :class:`~rpccore.Interceptor` objects that see
        everything this object sends and everything its servers dispatch, in
        order (see :mod:`rpccore.interceptors`). With OpenTelemetry installed
        (and ``[rpccore] opentelemetry`` left on), rpccore's own tracing and
        metrics interceptor comes first.

    Nothing connects until a cell is first used. Thread-safe.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None, *,
                 interceptors: Iterable[Interceptor] | None = None) -> None:
        self.conf = conf if conf is not None else cfg.ConfigOpts()
        opts.register_core_opts(self.conf)
        self.interceptors: list[Interceptor] = (
            default_interceptors(self, self.conf) + list(interceptors or ()))
        #: ``None`` when nothing intercepts: the hot path's one test
        self._chain = InterceptorChain.of(self.interceptors)
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        self._servers: list[Server | Listener] = []  # stopped by close() and remove_cell()
        self._closed = False
        self.version_caps = VersionCaps(self)
        self._cell_names = self._configured_cells()
        self._listed = set(self.conf[opts.CORE_GROUP].cells)
        self.default_cell = self.conf[opts.CORE_GROUP].default_cell
        if self._cell_names and self.default_cell not in self._cell_names:
            if self.default_cell == opts.DEFAULT_CELL:
                self.default_cell = self._cell_names[0]
        if not self._cell_names:
            self._cell_names = [self.default_cell]

    def _configured_cells(self) -> list[str]:
        names = list(self.conf[opts.CORE_GROUP].cells)
        if not names:
            try:
                sections = self.conf.list_all_sections()
            except Exception:
                sections = []
            names = [s[len("cell:"):] for s in sections if s.startswith("cell:")]
        return [n.strip() for n in names if n.strip()]

    # -- cells -------------------------------------------------------------

    @property
    def cell_names(self) -> list[str]:
        with self._lock:
            return list(self._cell_names)

    def cell(self, name: str | None = None) -> Cell:
        """The :class:`Cell` called ``name`` (default cell for ``None``).

        :raises InvalidDestination: no such cell.
        :raises ConfigError: its configuration is malformed (bad URL or core
            option, or a listed cell without a section); plugin options are
            checked when the cell's driver loads, at first use.
        """
        name = self.default_cell if name is None else name
        found = self._cells.get(name)  # lock-free fast path: dict reads are atomic
        if found is not None and not self._closed:
            return found
        with self._lock:
            if self._closed:
                raise RPCError("this RPC object is closed")
            found = self._cells.get(name)
            if found is not None:
                return found
            if name not in self._cell_names:
                raise InvalidDestination(
                    f"unknown cell {name!r}; known cells: {', '.join(self._cell_names)}")
            self._check_section(name)
            found = self._cells[name] = Cell(self.conf, name)
            return found

    def _check_section(self, name: str) -> None:
        # A cell listed in [rpccore] cells whose section is missing (often a
        # typo: [cell:edgee]) would silently become an in-memory cell.
        if name not in self._listed or not getattr(self.conf, "config_file", None):
            return
        try:
            sections = self.conf.list_all_sections()
        except Exception:  # not parsed from files: nothing to compare with
            return
        if opts.cell_group(name) not in sections:
            raise ConfigError(
                f"cell {name!r} is listed in [rpccore] cells but no config file has a "
                f"[{opts.cell_group(name)}] section (sections found: "
                f"{', '.join(s for s in sections if s.startswith('cell:')) or 'none'})")

    def add_cell(self, name: str, transport_url: str, **options: Any) -> None:
        """Add a cell at run time; ``options`` set the cell's options.

        :raises ConfigError: malformed URL or core option value; a plugin's
            options are checked when the driver loads (first use of the cell).
        :raises ValueError: a cell of that name exists.
        """
        with self._lock:
            if name in self._cell_names:
                raise ValueError(f"cell {name!r} exists; remove it first")
        cell = Cell(self.conf, name, dict(options, transport_url=transport_url))
        with self._lock:
            self._cells[name] = cell
            self._cell_names.append(name)
        LOG.info("added cell %s (%s)", name, cell.url)

    def remove_cell(self, name: str) -> None:
        """Stop this object's servers in the cell and close its driver.

        :raises InvalidDestination: no such cell.
        """
        with self._lock:
            if name not in self._cell_names:
                raise InvalidDestination(f"unknown cell {name!r}")
            self._cell_names.remove(name)
            cell = self._cells.pop(name, None)
            servers = [s for s in self._servers if cell is not None and s.cell is cell]
            self._servers = [s for s in self._servers if s not in servers]
        for server in servers:
            server.stop()
        if cell is not None:
            cell.close()
        LOG.info("removed cell %s", name)

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters of every cell used so far, by cell name."""
        with self._lock:
            cells = dict(self._cells)
        return {name: cell.stats.snapshot() for name, cell in cells.items()}

    # -- messaging ---------------------------------------------------------

    @staticmethod
    def make_destination(topic: str, host: str | None = None, cell: str | None = None,
                         fanout: bool = False) -> Destination:
        """See :func:`rpccore.make_destination`."""
        return make_destination(topic, host, cell, fanout)

    def _envelope(self, kind: str, ctx: Context, dest: Destination | str, message: Any,
                  timeout: float | None, extra: dict[str, Any]
                  ) -> tuple[Cell, Destination, dict[str, Any], float | None]:
        dest, dest_dict = resolve(dest)
        cell = self.cell(dest.cell)
        env, timeout = request_envelope(cell, kind, ctx, dest_dict, message, timeout, extra)
        return cell, dest, env, timeout

    def _request(self, kind: str, ctx: Context, dest: Destination | str, message: Any,
                 timeout: float | None, **extra: Any
                 ) -> tuple[Cell, Destination, str, bytes, float | None]:
        """A request's cell, destination, id, encoded envelope and timeout,
        without interceptors (see :meth:`_outgoing`)."""
        cell, dest, env, timeout = self._envelope(kind, ctx, dest, message, timeout, extra)
        body = envelope.encode(env, max_size=cell.max_message_size, key=cell.secret_key)
        return cell, dest, env["id"], body, timeout

    def _outgoing(self, what: str, ctx: Context, dest: Destination | str, message: Any,
                  timeout: float | None, **extra: Any
                  ) -> tuple[Cell, Destination, str, bytes, float | None, Sending | None]:
        """:meth:`_request` through the interceptors' ``before_send``, for a
        request that is a ``call``, ``cast``, ``stream`` or ``gather``
        (``what``). Every API (this one and :mod:`rpccore.aio`) builds its
        requests here and, when the last element, ``sending``, is not
        ``None``, ends each with ``sending.finish(error)`` (or runs the rest
        of a synchronous request in ``sending.run(work, *args)``).
        """
        kind = "cast" if what == "cast" else "call"
        cell, dest, env, timeout = self._envelope(kind, ctx, dest, message, timeout, extra)
        chain = self._chain
        sending = None if chain is None else chain.start_send(what, cell, dest, env)
        try:
            body = envelope.encode(env, max_size=cell.max_message_size, key=cell.secret_key)
        except InvalidMessage as exc:
            if sending is not None:
                sending.finish(exc)
            raise
        return cell, dest, env["id"], body, timeout, sending

    def cast(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
             confirm: bool = False) -> None:
        """Send ``message`` and return without waiting for the server.

        :param confirm: wait until the backend has taken the message (for
            rabbit: the broker's publisher confirm); an unroutable confirmed
            cast raises :class:`Undeliverable`.
        :raises InvalidDestination, InvalidMessage, ConfigError: before sending.
        :raises TransportError, Undeliverable: from the driver.
        """
        cell, dest, _, body, _, sending = self._outgoing("cast", ctx, dest, message, None)
        if sending is None:
            send_cast(cell, dest, body, confirm)
        else:
            sending.run(send_cast, cell, dest, body, confirm)

    def call(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
             timeout: float | None = None, heartbeat: float | None = None) -> Any:
        """Send ``message`` and return the endpoint's return value (for a
        generator method, the list of what it yields).

        :param timeout: seconds; default the cell's ``rpc_response_timeout``.
        :param heartbeat: seconds; the server sends a keepalive at least every
            ``heartbeat / 2`` s while the method runs, and the call gives up
            once nothing came for ``heartbeat`` s (a dead server is noticed
            long before a long ``timeout``).
        :raises Timeout: no reply in time, or the server went silent.
        :raises RemoteError: the endpoint raised, or no such method.
        :raises Undeliverable: nobody consumes ``dest`` (where the backend can tell).
        :raises TransportError: the backend is unreachable.
        :raises InvalidDestination, InvalidMessage, ConfigError: before sending.
        """
        cell, dest, msg_id, body, timeout, sending = self._call_outgoing(
            ctx, dest, message, timeout, heartbeat)
        if sending is None:
            return call_result(cell, dest, msg_id, body, timeout, heartbeat)
        return sending.run(call_result, cell, dest, msg_id, body, timeout, heartbeat)

    def _call_outgoing(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any],
                       timeout: float | None, heartbeat: float | None
                       ) -> tuple[Cell, Destination, str, bytes, float, Sending | None]:
        """A call's checks, then :meth:`_outgoing` (shared with :mod:`rpccore.aio`)."""
        if isinstance(dest, Destination) and dest.fanout:
            raise InvalidDestination("a call cannot go to a fanout destination; cast it "
                                     "or gather it")
        if heartbeat is None:
            cell, dest, msg_id, body, timeout, sending = self._outgoing(
                "call", ctx, dest, message, timeout)
        else:
            if heartbeat <= 0:
                raise InvalidMessage(f"heartbeat must be positive, not {heartbeat}")
            cell, dest, msg_id, body, timeout, sending = self._outgoing(
                "call", ctx, dest, message, timeout, hb=heartbeat)
        assert timeout is not None
        return cell, dest, msg_id, body, timeout, sending

    def stream(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> StreamReader:
        """Call a generator method and iterate over what it yields, as it yields.

        :param timeout: the longest wait for each item (default: the cell's
            ``rpc_response_timeout``).
        :returns: a :class:`~rpccore.stream_reader.StreamReader`; closing it
            early stops the server's generator. The server runs at most the
            cell's ``stream_window`` items ahead of what was read.
        :raises: what :meth:`call` raises, from ``next()``.
        """
        cell, dest, msg_id, body, timeout, window, sending = self._stream_outgoing(
            ctx, dest, message, timeout)
        driver = cell.driver()
        queue = cell.pending_calls.add(msg_id, ReplyQueue())
        send_watched(cell, driver, dest, body, cell.pending_calls.on_reply,
                      time.monotonic() + timeout, queue)
        reader = StreamReader(cell, msg_id, queue, timeout, window, new_id, str(dest))
        reader.sending = sending
        return reader

    def _stream_outgoing(self, ctx: Context, dest: Destination | str,
                         message: Mapping[str, Any], timeout: float | None
                         ) -> tuple[Cell, Destination, str, bytes, float, int, Sending | None]:
        """A stream's checks and window, then :meth:`_outgoing` (shared with
        :mod:`rpccore.aio`)."""
        if isinstance(dest, Destination) and dest.fanout:
            raise InvalidDestination("a stream cannot come from a fanout destination")
        dest = as_destination(dest)
        window = self.cell(dest.cell).options.stream_window
        per_item = timeout if timeout is not None else self.cell(dest.cell).rpc_response_timeout
        cell, dest, msg_id, body, timeout, sending = self._outgoing(
            "stream", ctx, dest, message, per_item, win=window, st=per_item)
        assert timeout is not None
        return cell, dest, msg_id, body, timeout, window, sending

    def gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any], *,
               timeout: float | None = None) -> list[tuple[str, Any]]:
        """Call every server of a topic's fanout; collect what comes back.

        :param dest: a fanout destination (a plain topic is taken as its fanout).
        :param timeout: how long to gather (default: the cell's
            ``rpc_response_timeout``); it always waits that long, since
            nobody knows how many servers there are.
        :returns: ``(host, result)`` for every server that answered in time,
            ``result`` being the return value or a :class:`RemoteError`.
        """
        return self._gather(ctx, dest, message, timeout)

    def _gather(self, ctx: Context, dest: Destination | str, message: Mapping[str, Any],
                timeout: float | None, **extra: Any) -> list[tuple[str, Any]]:
        cell, dest, msg_id, body, timeout, sending = self._gather_outgoing(
            ctx, dest, message, timeout, **extra)
        if sending is None:
            return gather_replies(cell, dest, msg_id, body, timeout)
        return sending.run(gather_replies, cell, dest, msg_id, body, timeout)

    def _gather_outgoing(self, ctx: Context, dest: Destination | str,
                         message: Mapping[str, Any], timeout: float | None, **extra: Any
                         ) -> tuple[Cell, Destination, str, bytes, float, Sending | None]:
        """A gather's envelope, to the topic's fanout, through the interceptors
        unless it is a system request (ping) (shared with :mod:`rpccore.aio`)."""
        dest = as_destination(dest)
        if not dest.fanout:
            dest = Destination(dest.topic, None, dest.cell, True)
        sending: Sending | None = None
        if extra:  # a system request (ping): never intercepted
            cell, dest, msg_id, body, timeout = self._request("call", ctx, dest, message,
                                                              timeout, **extra)
        else:
            cell, dest, msg_id, body, timeout, sending = self._outgoing(
                "gather", ctx, dest, message, timeout)
        assert timeout is not None
        return cell, dest, msg_id, body, timeout, sending

    def ping(self, dest: Destination | str, timeout: float | None = None) -> Any:
        """Ask a server about itself, answered by rpccore, never by endpoints.

        :returns: a dict with ``host``, ``topic``, ``cell``, ``pid``,
            ``versions`` (the highest version of each namespace, ``""`` for
            none), ``uptime`` (seconds) and ``workers``. A fanout ``dest``
            returns the list of ``(host, dict)`` of every server that answered.
        :raises: what :meth:`call` raises.
        """
        message = {"method": "ping", "args": {}}
        if isinstance(dest, Destination) and dest.fanout:
            return self._gather({}, dest, message, timeout, sys="ping")
        cell, dest, msg_id, body, timeout = self._request("call", {}, dest, message, timeout,
                                                          sys="ping")
        assert timeout is not None
        return await_reply(cell, dest, msg_id, body, timeout).get("result")

    def client(self, dest: Destination | str, *, version_cap: str | None = None,
               timeout: float | None = None, namespace: str | None = None) -> Client:
        """A :class:`rpccore.Client` for ``dest``: calls by method name and
        keyword arguments, at a version, under a version cap.

        :param version_cap: the highest version this client may send, or
            ``"auto"``: the lowest version the topic's servers announce.
        """
        from rpccore.client import Client
        return Client(self, as_destination(dest), version_cap=version_cap, timeout=timeout,
                      namespace=namespace)

    def serve(self, dest: Destination | str, endpoints: Iterable[object], *,
              workers: int | None = None,
              interceptors: Iterable[Interceptor] | None = None) -> Server:
        """A :class:`Server` of ``endpoints`` at ``dest`` (not started yet).

        ``workers``: threads that run endpoint methods (default: the cell's
        ``server_workers``); 0 runs them on the driver's delivering thread,
        for methods that never block (see :class:`rpccore.server.Server`).
        ``interceptors``: run around this server's dispatch, after this
        object's own (see :mod:`rpccore.interceptors`).

        :raises InvalidDestination: fanout destination, unknown cell.
        :raises ValueError: ``workers`` is negative.
        """
        dest = served_destination(dest)
        server = Server(self.cell(dest.cell), dest, endpoints, workers,
                        InterceptorChain.of(self.interceptors, list(interceptors or ())))
        with self._lock:
            self._servers.append(server)
        return server

    def notifier(self, publisher_id: str, *, topics: Iterable[str] = ("notifications",),
                 cell: str | None = None) -> Notifier:
        """A :class:`~rpccore.notify.Notifier` emitting as ``publisher_id`` on
        ``topics`` (see docs/notifications.rst). ``cell``: default
        ``[rpccore] notification_cell``, else the default cell."""
        from rpccore.notify import Notifier
        return Notifier(self._notification_cell(cell), publisher_id, topics, self._chain)

    def listener(self, topics: Iterable[str], endpoints: Iterable[object], *,
                 pool: str | None = None, cell: str | None = None,
                 batch_size: int | None = None,
                 batch_timeout: float | None = None) -> Listener:
        """A :class:`~rpccore.notify.Listener` (not started) of the
        notifications on ``topics`` as pool ``pool``, run by the endpoint
        methods named after their priority (see docs/notifications.rst).
        ``cell`` as for :meth:`notifier`."""
        from rpccore.notify import Listener
        listener = Listener(self._notification_cell(cell), topics, endpoints, pool,
                            batch_size, batch_timeout, self._chain)
        with self._lock:
            self._servers.append(listener)
        return listener

    def _notification_cell(self, cell: str | None) -> Cell:
        if cell is None:
            cell = self.conf[opts.CORE_GROUP].notification_cell or self.default_cell
        return self.cell(cell)

    def close(self) -> None:
        """Stop this object's servers and close every cell. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            servers, self._servers = self._servers, []
            cells, self._cells = list(self._cells.values()), {}
        for server in servers:
            server.stop()
        for server in servers:
            server.wait(timeout=10)
        for cell in cells:
            cell.close()

    def __enter__(self) -> RPC:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
