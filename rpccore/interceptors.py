"""Interceptors: hooks around what an ``RPC`` sends and what its servers dispatch.

An interceptor sees every request twice on each side: before it leaves
(``before_send``) and once the caller has its answer (``after_send``); before
a server runs it (``before_dispatch``) and once it ran and was answered
(``after_dispatch``). That is enough for context enrichment, authentication
(refuse a request), timing, logging, and rpccore's own OpenTelemetry tracing
(:mod:`rpccore.telemetry`), which is built on these hooks::

    class Timing(rpccore.Interceptor):
        def before_send(self, request):
            request.headers["token"] = current_token()   # travels in the envelope
            return time.monotonic()                      # given back to after_send

        def after_send(self, request, state, error):
            log.info("%s %s took %.1f ms", request.kind, request.method,
                     (time.monotonic() - state) * 1000)

        def before_dispatch(self, request):
            if request.headers.get("token") != EXPECTED:
                raise PermissionError("bad token")       # the caller gets a RemoteError
            request.ctx["user"] = user_of(request.headers["token"])

    rpc = rpccore.RPC(conf, interceptors=[Timing()])
    server = rpc.serve(dest, endpoints, interceptors=[OnlyThisServer()])

Interceptors run in list order before, and in reverse order after (the
first one wraps all others). Where they run (so that every API passes
them, the threaded one and :mod:`rpccore.aio`): ``before_send`` in
``RPC._outgoing``, where a request's envelope is built; ``after_send`` from
:meth:`Sending.finish`, called by each API when the request is over;
``before_dispatch`` and ``after_dispatch`` in the server's run of a request
(:meth:`InterceptorChain.start_dispatch`, :meth:`Dispatching.finish`).
A listener's notifications pass ``before_dispatch`` and ``after_dispatch``
as kind ``notify`` (one by one; batch listeners are not intercepted).
Requests rpccore answers itself (``ping``) and stream credit are not
intercepted. With no interceptor installed none of this code runs.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from rpccore.destination import Destination
from rpccore.dispatcher import Failure, exception_type_name, failure
from rpccore.errors import RemoteError, Timeout, TransportError, Undeliverable

if TYPE_CHECKING:
    from rpccore.cell import Cell

LOG = logging.getLogger(__name__)
_T = TypeVar("_T")

#: what a request is, as interceptors see it (``Request.kind``)
KINDS = ("call", "cast", "stream", "gather", "notify")
#: kinds that expect no reply (messaging rather than RPC)
ONE_WAY = frozenset(("cast", "notify"))


class Request:
    """One request, as an interceptor sees it (on either side).

    :ivar kind: ``"call"``, ``"cast"``, ``"stream"`` (a call read as a
        stream), ``"gather"`` (a call to every server of a topic) or
        ``"notify"`` (a notification: sent by a notifier, or received by a
        listener that is not a batch listener)
    :ivar destination: the :class:`~rpccore.Destination` it was sent to
        (its ``fanout`` is set for gathers and fanout casts; a
        notification's is its first notification topic, with ``fanout``:
        every pool gets a copy)
    :ivar cell: the cell's name
    :ivar driver: the cell's driver name (``rabbit``, ``zmq``...)
    :ivar method: the method called (a notification's event type)
    :ivar ctx: the request context (a dict). Changes made before sending go
        into the envelope; changes made before dispatch reach the endpoint.
    :ivar headers: string keys to string values carried in the envelope from
        the caller's interceptors to the server's (trace context, tokens);
        not seen by endpoints. Empty headers cost nothing on the wire.
    :ivar message_id: the request's id (unique per process)
    :ivar started: ``time.monotonic()`` when the hooks began
    """

    __slots__ = ("kind", "destination", "cell", "driver", "method", "ctx", "headers",
                 "message_id", "started")

    def __init__(self, kind: str, destination: Destination, cell: str, driver: str,
                 method: str, ctx: dict[str, Any], headers: dict[str, str],
                 message_id: str) -> None:
        self.kind = kind
        self.destination = destination
        self.cell = cell
        self.driver = driver
        self.method = method
        self.ctx = ctx
        self.headers = headers
        self.message_id = message_id
        self.started = time.monotonic()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.kind} {self.method} to {self.destination} "
                f"in cell {self.cell})")


class OutgoingRequest(Request):
    """A request this process sends (``before_send``, ``after_send``)."""

    __slots__ = ()


class IncomingRequest(Request):
    """A request a server of this process received (``before_dispatch``,
    ``after_dispatch``).

    :ivar host: the host this server serves as (its own, or one made up for
        a server of a topic alone)
    """

    __slots__ = ("host",)

    def __init__(self, kind: str, destination: Destination, cell: str, driver: str,
                 method: str, ctx: dict[str, Any], headers: dict[str, str],
                 message_id: str, host: str | None) -> None:
        super().__init__(kind, destination, cell, driver, method, ctx, headers, message_id)
        self.host = host


class Interceptor(abc.ABC):  # noqa: B024 (every hook is optional: override those you need)
    """Base class of interceptors: override the hooks you need.

    One interceptor object serves every request of the ``RPC`` (or server)
    it was given to, from many threads at once: keep per-request data in
    the value ``before_*`` returns, which comes back to ``after_*`` as
    ``state``, not in attributes.
    """

    def enabled(self) -> bool:
        """Whether this interceptor's hooks run for the next request (checked
        once per request on each side, before ``before_send`` or
        ``before_dispatch``; keep it cheap). An interceptor with nothing to
        do now (rpccore's OpenTelemetry one while no provider is set) says
        False and costs next to nothing. The default: always True (and not
        asked at all unless overridden)."""
        return True

    def before_send(self, request: OutgoingRequest) -> Any:
        """Before a request leaves (call, cast, stream, gather or
        notification), before its envelope is encoded: add to
        ``request.ctx`` or ``request.headers``.

        :returns: anything; given back to :meth:`after_send` as ``state``.
        :raises Exception: refuses to send: the caller gets this exception,
            nothing is sent, and the ``after_send`` of the interceptors
            before this one run with it as ``error``.
        """
        return None

    def after_send(self, request: OutgoingRequest, state: Any,
                   error: BaseException | None) -> None:
        """Once the request is over for the caller: a call has its reply or
        failed, a cast or notification was handed to the driver (or
        refused), a stream was
        read to its end or closed, a gather has gathered. Called once per
        ``before_send`` that returned, on the thread that ended the request.

        Exceptions raised here are logged and ignored: the caller's result
        stands.

        :param error: ``None`` on success, else what the caller got:
            :class:`~rpccore.RemoteError`, :class:`~rpccore.Timeout`,
            :class:`~rpccore.Undeliverable`, :class:`~rpccore.TransportError`...
        """

    def before_dispatch(self, request: IncomingRequest) -> Any:
        """Before a server runs a request: check it, add to ``request.ctx``
        (what the endpoint method receives).

        :returns: anything; given back to :meth:`after_dispatch` as ``state``.
        :raises Exception: refuses the request: the endpoint does not run,
            a caller waiting for a reply gets a :class:`~rpccore.RemoteError`
            whose ``exc_type`` names this exception's class and whose
            ``value`` is its message (no traceback is sent), the server
            counts it (``refused``), and the ``after_dispatch`` of the
            interceptors before this one run with that error.
        """
        return None

    def after_dispatch(self, request: IncomingRequest, state: Any,
                       error: RemoteError | None) -> None:
        """After the endpoint ran and the caller was answered (for a call),
        on the thread that ran it.

        Exceptions raised here are logged and ignored.

        :param error: ``None`` when the method returned (or a stream ended
            normally), else the :class:`~rpccore.RemoteError` the caller got.
        """


def outcome(error: BaseException | None) -> str:
    """A short label of how a request ended, for metrics and logs: ``ok``,
    ``remote_error``, ``timeout``, ``undeliverable``, ``transport_error``
    or ``error``."""
    if error is None:
        return "ok"
    if isinstance(error, RemoteError):
        return "remote_error"
    if isinstance(error, Timeout):
        return "timeout"
    if isinstance(error, Undeliverable):
        return "undeliverable"
    if isinstance(error, TransportError):
        return "transport_error"
    return "error"


def _overrides(interceptor: Interceptor, hook: str) -> bool:
    return getattr(type(interceptor), hook) is not getattr(Interceptor, hook)


class Sending:
    """The interception of one outgoing request, until :meth:`finish`."""

    __slots__ = ("request", "_ran", "_finished")

    def __init__(self, request: OutgoingRequest) -> None:
        self.request = request
        self._ran: list[tuple[Interceptor, Any]] = []
        self._finished = False

    def run(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work(*args)``, then :meth:`finish` with what it raised, if anything."""
        try:
            result = work(*args)
        except BaseException as exc:
            self.finish(exc)
            raise
        self.finish()
        return result

    def finish(self, error: BaseException | None = None) -> None:
        """Run the ``after_send`` hooks (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        for interceptor, state in reversed(self._ran):
            try:
                interceptor.after_send(self.request, state, error)
            except Exception:
                LOG.exception("interceptor %r failed in after_send of %r", interceptor,
                              self.request)


class Dispatching:
    """The interception of one request on a server, until :meth:`finish`.

    :ivar refusal: the failure to answer with when an interceptor refused
        the request (the endpoint must then not run), else ``None``
    """

    __slots__ = ("request", "refusal", "_ran", "_finished")

    def __init__(self, request: IncomingRequest) -> None:
        self.request = request
        self.refusal: Failure | None = None
        self._ran: list[tuple[Interceptor, Any]] = []
        self._finished = False

    def finish(self, fail: Failure | None = None) -> None:
        """Run the ``after_dispatch`` hooks (once) with the request's failure."""
        if self._finished:
            return
        self._finished = True
        error = None if fail is None else RemoteError(
            fail["type"], fail["message"], fail.get("traceback") or "")
        for interceptor, state in reversed(self._ran):
            try:
                interceptor.after_dispatch(self.request, state, error)
            except Exception:
                LOG.exception("interceptor %r failed in after_dispatch of %r", interceptor,
                              self.request)


class InterceptorChain:
    """Interceptors in order, and the code that runs their hooks.

    Built once per ``RPC`` (and per server given interceptors of its own);
    each hook list holds only the interceptors that override that hook.
    """

    def __init__(self, interceptors: Iterable[Interceptor]) -> None:
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        for interceptor in self.interceptors:
            if not isinstance(interceptor, Interceptor):
                raise TypeError(f"an interceptor must be an rpccore.Interceptor, not "
                                f"{type(interceptor).__name__}")
        self._send = [i for i in self.interceptors
                      if _overrides(i, "before_send") or _overrides(i, "after_send")]
        self._dispatch = [i for i in self.interceptors
                          if _overrides(i, "before_dispatch") or _overrides(i, "after_dispatch")]
        #: some interceptors may switch themselves off (Interceptor.enabled)
        self._gated = any(_overrides(i, "enabled") for i in self.interceptors)

    @classmethod
    def of(cls, *groups: Sequence[Interceptor] | None) -> InterceptorChain | None:
        """The chain of every interceptor of ``groups`` in order; ``None``
        when there is none (the callers' fast path)."""
        found = [i for group in groups if group for i in group]
        return cls(found) if found else None

    def start_send(self, kind: str, cell: Cell, dest: Destination, env: dict[str, Any],
                   method: str | None = None) -> Sending | None:
        """Run ``before_send`` on a request's envelope ``env`` before it is
        encoded: changes to ``ctx`` and ``headers`` go into it (``hdr``).
        ``method``: what ``Request.method`` says (default: the envelope's).

        :returns: what to :meth:`Sending.finish` once the request is over
            (``None``: no interceptor watches sending).
        :raises Exception: what an interceptor raised to refuse the request
            (the ones before it have been finished with it).
        """
        send = self._send
        if self._gated:
            send = _enabled(send)
        if not send:
            return None
        ctx = dict(env["ctx"])  # the caller's own dict must not change
        headers: dict[str, str] = {}
        sending = Sending(OutgoingRequest(kind, dest, cell.name, cell.driver_name,
                                          env["method"] if method is None else method, ctx,
                                          headers, env["id"]))
        for interceptor in send:
            try:
                state = interceptor.before_send(sending.request)
            except BaseException as exc:
                sending.finish(exc)
                raise
            sending._ran.append((interceptor, state))
        env["ctx"] = sending.request.ctx
        if headers:
            env["hdr"] = headers
        return sending

    def start_dispatch(self, cell: Cell, host: str | None, env: dict[str, Any], *,
                       kind: str | None = None, dest: Destination | None = None,
                       method: str | None = None) -> Dispatching | None:
        """Run ``before_dispatch`` on an opened request envelope ``env``.
        ``kind``, ``dest`` and ``method``: what the request's fields say
        when the envelope does not (a notification: ``"notify"``, the topic
        it came on, its event type).

        :returns: what to :meth:`Dispatching.finish` once the request ran
            and was answered (``None``: no interceptor watches dispatch);
            its ``refusal`` is set when an interceptor refused the request.
        """
        dispatch = self._dispatch
        if self._gated:
            dispatch = _enabled(dispatch)
        if not dispatch:
            return None
        hdr = env.get("hdr")
        # strings only: a malformed header from a stranger must not break a hook
        headers = {} if type(hdr) is not dict else {
            key: value for key, value in hdr.items() if type(value) is str}
        dispatching = Dispatching(IncomingRequest(
            kind or request_kind(env), dest or envelope_destination(env, cell.name), cell.name,
            cell.driver_name, env["method"] if method is None else method, env["ctx"], headers,
            env["id"], host))
        for interceptor in dispatch:
            try:
                state = interceptor.before_dispatch(dispatching.request)
            except Exception as exc:
                LOG.info("cell %s: %r refused %r: %s", cell.name, interceptor,
                         dispatching.request, exc)
                cell.stats.incr("refused")
                dispatching.refusal = failure(exception_type_name(exc), str(exc))
                return dispatching
            dispatching._ran.append((interceptor, state))
        return dispatching


def _enabled(interceptors: list[Interceptor]) -> list[Interceptor]:
    """Those of ``interceptors`` whose :meth:`~Interceptor.enabled` says
    True now, each asked once."""
    enabled = []
    for interceptor in interceptors:  # a loop costs less than a comprehension here
        if interceptor.enabled():
            enabled.append(interceptor)
    return enabled


def request_kind(env: dict[str, Any]) -> str:
    """What an opened request envelope is: call, cast, stream or gather."""
    if env["kind"] == "cast":
        return "cast"
    if env.get("win") is not None:
        return "stream"
    dest = env.get("dest")
    if type(dest) is dict and dest.get("fanout") is True:
        return "gather"
    return "call"


def envelope_destination(env: dict[str, Any], cell: str) -> Destination:
    """The destination a request envelope names (its sender's view)."""
    dest = env.get("dest")
    if type(dest) is not dict:
        return Destination("", None, cell, False)
    topic, host = dest.get("topic"), dest.get("host")
    return Destination(topic if type(topic) is str else "",
                       host if type(host) is str else None, cell,
                       dest.get("fanout") is True)
