"""One NATS connection per driver: connecting, reconnecting with jitter,
state that other threads can wait on, and errors told without secrets.

nats-py reconnects by itself once connected (resubscribing every
subscription); this module adds what it leaves out: retrying the *first*
connection in the background until it succeeds, a reconnect policy that
goes round the URL's servers at once after a loss and then waits
``nats_reconnect_wait`` plus a random jitter between rounds, and a
``threading.Event`` that senders wait on (never past their deadlines).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client

from rpccore.driverkit import HostPort
from rpccore.errors import TransportError
from rpccore.stats import CellStats
from rpccore_nats.options import ConnectParams
from rpccore_nats.quietlog import QuietLog

LOG = logging.getLogger(__name__)
_QUIET = QuietLog(LOG, interval=5.0)

_REFUSED = "the server refused the credentials"
_CREDENTIALS_IN_URL = re.compile(r"(\w+://)[^@/\s]*@")


def safe_text(exc: BaseException | str) -> str:
    """An error as text an operator may read: no ``user:password@``."""
    text = str(exc) or type(exc).__name__
    return _CREDENTIALS_IN_URL.sub(r"\1****@", text)


def explain(exc: BaseException | str) -> str:
    """A connection error in words an operator can act on."""
    text = safe_text(exc)
    lowered = text.lower()
    if "authorization" in lowered or "authentication" in lowered:
        return f"{_REFUSED} ({text})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: nothing listens there ({text})"
    if isinstance(exc, (TimeoutError, nats.errors.TimeoutError)):
        return f"timed out ({text})"
    return text


class NatsConnection:
    """The client, its state and its reconnect policy (see the module docstring).

    ``on_connected`` coroutines run on the loop after every (re)connection,
    before senders are let through (the reply inbox subscribes there).
    """

    def __init__(self, params: ConnectParams, stats: CellStats, name: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.params = params
        self.stats = stats
        self.name = name
        self.client = Client()
        self.ready = threading.Event()
        self.last_error = "not connected yet"
        #: why the server refused our credentials, until we are connected again
        self.refused = ""
        self.closing = False
        self.on_connected: list[Callable[[], Awaitable[None]]] = []
        self._loop = loop
        self._attempt = 0
        self._started = False
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle (loop thread) ---------------------------------------------

    def start(self) -> None:
        """Begin connecting (on the loop thread); idempotent."""
        if not self._started:
            self._started = True
            self._task = self._loop.create_task(self._connect_until_done())

    async def _connect_until_done(self) -> None:
        """The first connection, tried again until it works or we close."""
        while not self.closing:
            try:
                await self.client.connect(
                    servers=list(self.params.servers), name=self.name,
                    error_cb=self._on_error, disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected, closed_cb=self._on_closed,
                    reconnect_to_server_handler=self._next_server,
                    allow_reconnect=True, **self.params.connect_kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = explain(exc)
                LOG.warning("%s: cannot connect to NATS at %s: %s", self.name,
                            ", ".join(self.params.servers_for_logs), self.last_error)
                self.client = Client()  # a failed connect leaves the client unusable
                await asyncio.sleep(self._pause())
                continue
            LOG.info("%s: connected to NATS %s", self.name, self._server_name())
            await self._connected()
            return

    async def _connected(self) -> None:
        self._attempt = 0
        self.refused = ""
        for hook in self.on_connected:
            try:
                await hook()
            except Exception as exc:
                LOG.warning("%s: setting up after connecting failed: %s", self.name,
                            safe_text(exc))
        self.ready.set()

    def _pause(self) -> float:
        return self.params.reconnect_wait + random.uniform(0, self.params.reconnect_jitter)

    def _next_server(self, servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        """nats-py's reconnect hook: the next server in turn, at once during
        the first round after a loss, then after a pause with jitter."""
        attempt = self._attempt
        self._attempt += 1
        server = servers[attempt % len(servers)] if servers else None
        if attempt < len(servers):
            delay = random.uniform(0, min(0.05, self.params.reconnect_jitter))
        else:
            delay = self._pause()
        return server, delay

    def _server_name(self) -> str:
        url = self.client.connected_url
        return str(HostPort(url.hostname, url.port)) if url is not None and url.hostname \
            else "?"

    # -- callbacks (loop thread) -----------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        text = explain(exc)
        if text.startswith(_REFUSED):
            self.refused = text
        # the server hangs up after refusing credentials: keep saying why
        self.last_error = self.refused or text
        self.stats.incr("nats_errors")
        if not self.closing:
            _QUIET.warning(self.last_error, "%s: NATS error: %s", self.name, self.last_error)

    async def _on_disconnected(self) -> None:
        if self.ready.is_set() and not self.closing:
            LOG.warning("%s: lost the connection to NATS; reconnecting", self.name)
        self.ready.clear()
        self._attempt = 0

    async def _on_reconnected(self) -> None:
        self.stats.incr("reconnects")
        LOG.warning("%s: reconnected to NATS %s", self.name, self._server_name())
        await self._connected()

    async def _on_closed(self) -> None:
        self.ready.clear()

    async def close(self) -> None:
        """Drain (hand over what is in flight) and close; never raises."""
        self.closing = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        client = self.client
        try:
            if client.is_connected:
                await client.drain()
            elif not client.is_closed:
                await client.close()
        except Exception as exc:
            LOG.debug("%s: closing the NATS connection: %s", self.name, safe_text(exc))
            try:
                await client.close()
            except Exception:
                pass
        self.ready.clear()

    # -- any thread ----------------------------------------------------------

    def wait_ready(self, deadline: float, doing: str) -> None:
        """Wait until connected, at most until ``deadline`` (monotonic).

        :raises TransportError: still not connected then; says why.
        """
        if self.ready.is_set():
            return
        if self.closing:
            raise TransportError(f"{self.name}: the nats driver is closed")
        if not self.ready.wait(max(0.0, deadline - time.monotonic())):
            raise TransportError(
                f"{self.name}: not connected to NATS ({', '.join(self.params.servers_for_logs)}) "
                f"while {doing}: {self.last_error}")
