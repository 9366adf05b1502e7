"""A server: a subscription, a bounded queue and worker threads that dispatch."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from rpccore import envelope
from rpccore.bounded_queue import BoundedQueue
from rpccore.destination import Destination
from rpccore.dispatcher import Dispatcher, Failure, failure
from rpccore.errors import InvalidMessage
from rpccore.interceptors import Dispatching, InterceptorChain
from rpccore.keepalive import KEEPALIVES
from rpccore.method_times import MethodTimes
from rpccore.ratelog import RateLimitedLog
from rpccore.replay import ReplayGuard
from rpccore.responder import Responder
from rpccore.streaming import collect, stream_generator

if TYPE_CHECKING:
    from rpccore.cell import Cell
    from rpccore.driver import Incoming, Subscription

LOG = logging.getLogger(__name__)
_ACKLOG = RateLimitedLog(LOG)  # acks fail per connection, not per server
_STOP = object()
#: what the envelopes of stream controls and of system requests (ping)
#: contain, as rpccore encodes them (see Server._answered_here)
_CONTROL_MARK = b'"kind":"control"'
_SYSTEM_MARK = b'"sys":'
_instances = itertools.count(1)
#: what ``async def`` and async generator methods return: results an event
#: loop must run (see Server._loop_result)
LOOP_RESULTS = (types.CoroutineType, types.AsyncGeneratorType)


class Server:
    """Serves ``endpoints`` at a destination. Built by ``RPC.serve``.

    ``start()`` returns once the subscriptions exist. ``stop()`` stops taking
    new requests; those already received still run and are answered.
    ``wait()`` returns when they have.

    ``workers`` threads (default: the cell's ``server_workers``) run the
    endpoint methods; at most that many run at once. On a driver with
    ``leader_follower`` (zmq) a request runs on the driver's thread that read
    it, which hands the driver's I/O to another of its threads first (or,
    for a method whose recent runs were quick, only should this run take
    long), and only goes to the workers when ``workers`` requests are running
    already.
    With ``workers=0`` methods run on the thread that delivers
    each message (the driver's I/O thread, or the memory driver's thread of
    the subscription): no hand-off between threads, the lowest latency, for methods
    that return quickly and never block. A method that blocks holds up every
    message that thread delivers (with zmq, all servers of the process on
    that port; with the AMQP drivers, all of the cell's traffic, replies to
    its own calls included, so such a method must not make calls).
    """

    def __init__(self, cell: Cell, dest: Destination, endpoints: Iterable[object],
                 workers: int | None = None,
                 interceptors: InterceptorChain | None = None) -> None:
        self.cell = cell
        #: run around every dispatch (``None``: none, the fast path)
        self._chain = interceptors
        self.destination = dest
        self._dispatcher = Dispatcher(endpoints)
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be 0 or more, not {workers}")
        self._nworkers = cell.options.server_workers if workers is None else workers
        self._queue: BoundedQueue[Any] = BoundedQueue(cell.options.server_queue_size)
        self._threads: list[threading.Thread] = []
        #: one token per request that may run at once (leader/follower
        #: drivers only: requests run on the driver's threads as well as on
        #: the workers); a queue of tokens costs less than a Semaphore
        self._slots: queue.SimpleQueue[None] | None = None
        #: (leader/follower) requests queued and not yet given a slot by a
        #: worker: while there are any, a new request queues behind them
        #: instead of taking a slot that frees up first (it would overtake
        #: them: a call after casts to a one-worker server would run first)
        self._waiting_for_slot = 0
        self._waiting_lock = threading.Lock()
        #: how long each method has been taking (leader/follower drivers only)
        self._times: MethodTimes | None = None
        self._subscription: Subscription | None = None
        self._lock = threading.Lock()
        self._state = "new"
        self._replays = ReplayGuard()
        #: counted per request (advanced with next(): no call on the hot path)
        self._received = cell.stats.counter("received")
        self._replied = cell.stats.counter("replied")
        # Hostile input may arrive thousands of times a second: log each kind
        # at most every ten seconds per server.
        self._ratelog = RateLimitedLog(LOG)
        #: where this very server is reached (its host, or one made up for a
        #: server of a topic alone): stream credit comes back to it
        self.identity = dest
        self._origin: dict[str, Any] = {}
        self._started = time.monotonic()

    def start(self) -> Server:
        """Subscribe and start the workers. Returns the server itself.

        :raises TransportError: the backend could not be reached.
        :raises ConfigError: the cell's driver is not installed.
        """
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"server is {self._state}; a server starts once")
            driver = self.cell.driver()
            host = self.destination.host or driver.local_host() or (
                f"{socket.gethostname()}:{os.getpid()}:{next(_instances)}")
            self.identity = Destination(self.destination.topic, host, self.destination.cell)
            self._origin = {"from": {"topic": self.destination.topic, "host": host},
                            "host": host}
            self._started = time.monotonic()
            if self._nworkers and driver.leader_follower:
                self._slots = queue.SimpleQueue()
                for _ in range(self._nworkers):
                    self._slots.put(None)
                self._times = MethodTimes()
            for i in range(self._nworkers):
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"rpccore-{self.destination.topic}-{i}")
                thread.start()
                self._threads.append(thread)
            try:
                put: Callable[[Incoming], None]
                if self._nworkers == 0:  # inline: on the thread that delivers
                    put = self._handle_safely
                elif self._slots is not None:
                    put = self._run_or_queue
                else:
                    # Never block a driver's delivering thread: every driver
                    # bounds what it delivers unacknowledged (prefetch, link
                    # credit, high-water marks, the memory driver's limit).
                    put = self._queue_or_answer
                self._subscription = driver.subscribe(self.identity, put)
            except BaseException:
                self._stop_workers()
                self._state = "stopped"
                raise
            self._state = "running"
        LOG.info("serving %s in cell %s", self.destination, self.cell.name)
        return self

    def stop(self) -> None:
        """Stop consuming; requests already received still complete."""
        with self._lock:
            if self._state != "running":
                self._state = "stopped"
                return
            self._state = "stopped"
            sub, self._subscription = self._subscription, None
        if sub is not None:
            try:
                sub.close()
            except Exception:
                LOG.exception("closing the subscription of %s failed", self.destination)
        self._stop_workers()
        LOG.info("stopped serving %s in cell %s", self.destination, self.cell.name)

    def _stop_workers(self) -> None:
        for _ in self._threads:
            self._queue.put_nowait_unbounded(_STOP)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the workers to finish after :meth:`stop`; True if they did."""
        end = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if end is None else max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            return False
        slots = self._slots
        if slots is None:
            return True
        # requests still running on the driver's threads hold slots
        taken = 0
        try:
            while taken < self._nworkers:
                slots.get(timeout=None if end is None else max(0.0, end - time.monotonic()))
                taken += 1
        except queue.Empty:
            pass
        for _ in range(taken):
            slots.put(None)
        return taken == self._nworkers

    @property
    def running(self) -> bool:
        return self._state == "running"

    def _work(self) -> None:
        get = self._queue.get
        handle = self._handle_safely
        slots = self._slots
        while True:
            incoming = get()
            if incoming is _STOP:
                return
            if slots is None:
                if type(incoming) is tuple:  # opened already (_queue_or_answer)
                    handle(*incoming)
                else:
                    handle(incoming)
            else:
                slots.get()
                with self._waiting_lock:
                    self._waiting_for_slot -= 1
                try:
                    if type(incoming) is tuple:  # opened already (_run_or_queue)
                        handle(*incoming)
                    else:
                        handle(incoming)
                finally:
                    slots.put(None)

    def _answered_here(self, incoming: Incoming) -> dict[str, Any] | None | Literal[False]:
        """Stream credit and cancels, and pings, are handled on the thread
        that delivers them, never behind requests in the workers' queue: a
        stream waiting for credit holds a worker, and a busy server must
        still answer pings. Spotted by their envelope's compact JSON (the
        encoder writes no spaces); anything else that matches is opened
        here and returned for the workers.

        :returns: False: not one of them (nothing done); None: handled;
            an envelope: opened here, to be run by a worker.
        """
        body = incoming.body
        if type(body) is not bytes:  # a bytearray or memoryview (decode takes them too)
            body = bytes(body)
        # find, not ``in``: cheaper on bytes (see rpccore.jsoncodec)
        if body.find(_CONTROL_MARK) == -1 and body.find(_SYSTEM_MARK) == -1:
            return False
        env = self._open(incoming)
        if env is not None and env.get("sys") is not None and env["kind"] == "call":
            self._handle_safely(incoming, env)
            return None
        return env

    def _queue_or_answer(self, incoming: Incoming) -> None:
        """(Drivers without leader/follower) queue the request for the workers."""
        answered = self._answered_here(incoming)
        if answered is False:
            self._queue.put_nowait_unbounded(incoming)
        elif answered is not None:
            self._queue.put_nowait_unbounded((incoming, answered))

    def _run_or_queue(self, incoming: Incoming) -> None:
        """(Leader/follower drivers) run the request on this thread when a
        slot is free and the driver lets the thread go (told how long the
        method's recent runs took); queue it otherwise."""
        slots, times = self._slots, self._times
        assert slots is not None and times is not None
        answered = self._answered_here(incoming)
        if answered is None:
            return
        if self._waiting_for_slot:  # requests before this one wait: keep their order
            self._queue_for_slot(incoming if answered is False else (incoming, answered))
            return
        try:
            slots.get_nowait()
        except queue.Empty:
            self._queue_for_slot(incoming if answered is False else (incoming, answered))
            return
        try:
            env = self._open(incoming) if answered is False else answered
            if env is None:
                return
            if not incoming.release_thread(times.expected(env["method"])):
                self._queue_for_slot((incoming, env))
                return
            self._run(incoming, env)
        except Exception:
            LOG.exception("unexpected error handling a message for %s", self.destination)
            _safe_ack(incoming)
        finally:
            slots.put(None)

    def _queue_for_slot(self, item: Incoming | tuple[Incoming, dict[str, Any]]) -> None:
        """(Leader/follower) queue a request for the workers, counted until
        a worker has a slot for it (see ``_waiting_for_slot``)."""
        with self._waiting_lock:
            self._waiting_for_slot += 1
        self._queue.put_nowait_unbounded(item)

    def _handle_safely(self, incoming: Incoming, env: dict[str, Any] | None = None) -> None:
        """Open the request (unless ``env``, its envelope, is given) and run it."""
        try:
            if env is None:
                env = self._open(incoming)
            if env is not None:
                self._run(incoming, env)
        except Exception:  # a bad request never kills a worker (or a driver's thread)
            LOG.exception("unexpected error handling a message for %s", self.destination)
            _safe_ack(incoming)

    def _open(self, incoming: Incoming) -> dict[str, Any] | None:
        """The request's envelope, checked; ``None`` when it is dropped
        (counted, logged and acknowledged here)."""
        cell = self.cell
        stats = cell.stats
        try:
            env = envelope.decode(incoming.body, max_size=cell.max_message_size,
                                  key=cell.secret_key)
        except envelope.BadSignature as exc:
            stats.incr("dropped_unsigned")
            self._ratelog.warning("unsigned", "cell %s: dropped a message for %s: %s",
                             cell.name, self.destination, exc)
            _safe_ack(incoming)
            return None
        except envelope.UnsupportedVersion as exc:
            stats.incr("dropped_malformed")
            self._ratelog.warning("version", "cell %s: %s", cell.name, exc)
            _safe_ack(incoming)
            return None
        except InvalidMessage as exc:
            stats.incr("dropped_malformed")
            self._ratelog.warning("malformed", "cell %s: dropped a malformed message for %s: %s",
                             cell.name, self.destination, exc)
            _safe_ack(incoming)
            return None
        kind = env["kind"]
        if kind == "reply" or kind == "notification":  # never for a server
            stats.incr("dropped_malformed")
            _safe_ack(incoming)
            return None
        deadline = env.get("deadline")
        if deadline is not None and time.time() > deadline:
            stats.incr("dropped_expired")
            _safe_ack(incoming)
            return None
        if cell.secret_key is not None:
            if deadline is None or not self._replays.first_time(env["id"], deadline):
                stats.incr("dropped_replayed")
                self._ratelog.warning("replay", "cell %s: refused a replayed message %s",
                                 cell.name, env["id"])
                _safe_ack(incoming)
                return None
        if kind == "control":  # credit or cancel for a stream: never dispatched
            if not cell.streams.control(env):
                stats.incr("late_controls")
            _safe_ack(incoming)
            return None
        next(self._received)
        return env

    def _run(self, incoming: Incoming, env: dict[str, Any]) -> None:
        """Run an opened request, reply to a call, acknowledge."""
        responder = None
        if env["kind"] == "call" and incoming.can_reply:
            # Only streams (credit comes back to ``from``) and gathers (which
            # tell servers apart by ``host``) need to know who answered.
            dest = env.get("dest")
            wants_origin = env.get("win") is not None or (
                type(dest) is dict and dest.get("fanout") is True)
            responder = Responder(self.cell, incoming, env,
                                  self._origin if wants_origin else None)
            if env.get("sys") is not None:
                self._answer_system(responder, env)
                _safe_ack(incoming)
                return
        dispatching = refusal = None
        if self._chain is not None:  # may refuse the request (then it does not run)
            dispatching = self._chain.start_dispatch(self.cell, self.identity.host, env)
            refusal = None if dispatching is None else dispatching.refusal
        if responder is not None and refusal is None:
            heartbeat = env.get("hb")
            if isinstance(heartbeat, (int, float)) and heartbeat > 0:
                KEEPALIVES.start(responder, heartbeat / 2)
        # only a leader/follower server times its methods (see _finish)
        start = time.monotonic() if self._times is not None else 0.0
        fail: Failure | None = None
        try:
            result, fail = self._dispatcher.dispatch(
                env["ctx"], env["method"], env["args"], env.get("ns"), env.get("ver") or "1.0"
            ) if refusal is None else (None, refusal)
            if type(result) in LOOP_RESULTS:  # an async def or async generator method
                later = self._loop_result(incoming, env, responder, dispatching, result)
                if later is None:
                    return  # finished by the event loop's server (rpccore.aio)
                result, fail = later
        except BaseException:
            if responder is not None:
                responder.finished = True
            if dispatching is not None:
                dispatching.finish(fail)
            raise
        self._finish(incoming, env, responder, dispatching, result, fail, start)

    def _finish(self, incoming: Incoming, env: dict[str, Any], responder: Responder | None,
                dispatching: Dispatching | None, result: Any, fail: Failure | None,
                start: float) -> None:
        """Stream or collect a generator's items, send the final reply, end
        the interception and acknowledge. ``start``: when the request began
        to hold this thread. (Called later, from another thread, for a
        method that ran on an event loop: see :meth:`_loop_result`.)"""
        times = self._times
        try:
            if type(result) is types.GeneratorType:
                if responder is not None and env.get("win") is not None:
                    sent, fail = stream_generator(self.cell.streams, responder, env, result)
                    result = None
                else:
                    result, fail = collect(result)
            took = time.monotonic() - start if times is not None else 0.0
            if responder is not None:
                if responder.final(result, fail):
                    next(self._replied)
            elif fail is not None and env["kind"] == "cast":
                LOG.warning("cast %s to %s raised %s: %s", env["method"], self.destination,
                            fail["type"], fail["message"])
        finally:
            if responder is not None:
                responder.finished = True  # no keepalive after this
            if dispatching is not None:
                dispatching.finish(fail)
        _safe_ack(incoming)
        if times is not None:  # once the caller has its reply
            times.record(env["method"], took)

    def _loop_result(self, incoming: Incoming, env: dict[str, Any],
                     responder: Responder | None, dispatching: Dispatching | None,
                     result: Any) -> tuple[Any, Failure | None] | None:
        """What an ``async def`` or async generator method returned: the seam
        of :mod:`rpccore.aio`, whose servers run a coroutine on their loop
        (returning ``None``; they call :meth:`_finish` once it is done) and
        turn an async generator into a generator. A threaded server has no
        loop: the caller gets a ``RemoteError`` that says so."""
        if type(result) is types.CoroutineType:
            result.close()  # never run: no "coroutine was never awaited" warning
        return None, failure("rpccore.InvalidResult",
                             f"{env['method']}() is async: serve it with rpccore.aio.RPC")

    def _answer_system(self, responder: Responder, env: dict[str, Any]) -> None:
        """Requests rpccore answers itself, never dispatched to endpoints."""
        if env["sys"] == "ping":
            responder.final({
                "host": self.identity.host, "topic": self.destination.topic,
                "cell": self.cell.name, "pid": os.getpid(),
                "versions": self._dispatcher.versions(),
                "uptime": round(time.monotonic() - self._started, 3),
                "workers": self._nworkers,
            }, None)
        else:
            responder.final(None, {"type": "rpccore.NoSuchMethod",
                                   "message": f"unknown system request {env['sys']!r}",
                                   "traceback": ""})


def _safe_ack(incoming: Incoming) -> None:
    try:
        incoming.ack()
    except Exception as exc:
        _ACKLOG.warning("ack", "acknowledging a message failed: %s", exc)
