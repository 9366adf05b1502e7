"""JetStream: the streams and consumers the driver makes, and publishing
that waits for JetStream's acknowledgement.

- Confirmed casts go to one **work-queue** stream per control exchange
  (subjects ``rpccore.<cx>.c.>``). Each topic and each (topic, host) has a
  durable push consumer delivered to a queue group, so every message goes
  to one server of the destination and leaves the stream once that server
  acknowledged it (after running it).
- Notifications go to one **interest** stream per notification topic,
  bounded by ``notification_max_queue_length`` (per subject, so the pool
  that lags furthest behind keeps at most that many) and
  ``notification_ttl``; each pool has a durable consumer created the first
  time it listens (it gets what is published from then on).
- Publishing carries a ``Nats-Msg-Id``: a publish retried after a lost
  acknowledgement (a server killed, a leader moving) is stored once.

Creating what already exists is harmless: JetStream accepts an identical
configuration again, and the driver keeps what another process made when
the two disagree (logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client
from nats.js import api
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from rpccore.errors import TransportError
from rpccore_nats.connection import safe_text
from rpccore_nats.naming import QUEUE_GROUP, Subjects
from rpccore_nats.options import ConnectParams

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds JetStream remembers message ids (de-duplication).
DEDUP_WINDOW = 120.0
#: Seconds one publish attempt waits for JetStream's acknowledgement before
#: it is tried again (same message id: stored once), e.g. through another
#: server after the one connected to died.
ATTEMPT_TIMEOUT = 0.75
#: Seconds between two attempts while JetStream does not answer.
RETRY_PAUSE = 0.1
#: Seconds one JetStream API request (a stream's information, a leader's
#: stepdown) may take before it counts as not answered (a leader moving).
ADMIN_TIMEOUT = ATTEMPT_TIMEOUT * 2


async def stream_info(client: Client, name: str) -> api.StreamInfo:
    """Stream ``name``'s information, within :data:`ADMIN_TIMEOUT`.

    :raises NotFoundError: no such stream.
    :raises TimeoutError: no answer in time.
    """
    return await asyncio.wait_for(client.jsm().stream_info(name), ADMIN_TIMEOUT)


class JetStreamMissing(TransportError):
    """The server does not run JetStream (no one answers its API)."""


#: JetStream's own "not enabled" errors (503 with these codes): the server
#: runs JetStream but not for this account (in operator/JWT mode, an account
#: whose JWT carries no JetStream limits), or not at all.
_NOT_ENABLED_CODES = (10039, 10076)  # JSNotEnabledForAccountErr, JSNotEnabledErr


def no_jetstream(exc: BaseException) -> bool:
    """Whether ``exc`` says there is no JetStream for us: NATS's own "no
    responders" to a JetStream API request (a 503 status, not a JetStream
    error in a body: nobody serves the API on this server), or JetStream's
    "not enabled" (for the account). JetStream that is busy (electing a
    leader) answers with another error body instead."""
    if isinstance(exc, nats.errors.NoRespondersError):
        return True
    return isinstance(exc, ServiceUnavailableError) and (
        exc.err_code is None or exc.err_code in _NOT_ENABLED_CODES)


@dataclass(frozen=True)
class Feed:
    """A durable push consumer: where it delivers, and to which group."""

    stream: str
    consumer: str
    deliver_subject: str


class JetStreamAdmin:
    """Streams, consumers and acknowledged publishing on one connection."""

    def __init__(self, params: ConnectParams, name: str) -> None:
        self.params = params
        self.name = name
        self._known_consumers: set[tuple[str, str]] = set()
        self._streams_made: set[str] = set()

    def _storage(self) -> api.StorageType:
        return api.StorageType.FILE if self.params.file_storage else api.StorageType.MEMORY

    async def _until(self, deadline: float, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()``, tried again while JetStream does not answer (no
        meta leader yet, a leader moving) until ``deadline``."""
        while True:
            try:
                return await make()
            except (nats.errors.NoRespondersError, ServiceUnavailableError) as exc:
                if no_jetstream(exc):
                    raise JetStreamMissing(f"{self.name}: the NATS server has no JetStream "
                                           "(start it with -js; in operator/JWT mode, the "
                                           "account's JWT needs JetStream limits)") from None
                await self._pause_or_give_up(deadline, exc)
            except nats.errors.TimeoutError as exc:
                await self._pause_or_give_up(deadline, exc)

    async def _pause_or_give_up(self, deadline: float, exc: BaseException) -> None:
        if time.monotonic() + RETRY_PAUSE >= deadline:
            raise TransportError(f"{self.name}: JetStream did not answer in time: "
                                 f"{safe_text(exc)}") from None
        await asyncio.sleep(RETRY_PAUSE)

    # -- streams ---------------------------------------------------------------

    async def ensure_stream(self, client: Client, config: api.StreamConfig,
                            deadline: float) -> None:
        name = config.name
        assert name is not None
        if name in self._streams_made:
            return
        jsm = client.jsm()
        try:
            await self._until(deadline, lambda: jsm.add_stream(config))
        except APIError as exc:
            if exc.err_code != 10058:  # name in use with another configuration
                raise
            try:
                await self._until(deadline, lambda: jsm.update_stream(config))
                LOG.info("%s: updated the limits of JetStream stream %s", self.name, name)
            except APIError as update_exc:
                LOG.warning("%s: JetStream stream %s exists with another configuration "
                            "that cannot be changed (%s); using it as it is", self.name,
                            name, update_exc.description)
        self._streams_made.add(name)

    def cast_stream_config(self, subjects: Subjects, stream: int = 0) -> api.StreamConfig:
        """Confirmed casts' work-queue stream number ``stream``."""
        return api.StreamConfig(
            name=subjects.cast_stream_name(stream),
            subjects=[subjects.cast_stream_wildcard(stream)],
            retention=api.RetentionPolicy.WORK_QUEUE, storage=self._storage(),
            num_replicas=self.params.replicas, duplicate_window=DEDUP_WINDOW,
            discard=api.DiscardPolicy.OLD)

    def notification_stream_config(self, subject: str, max_length: int,
                                   ttl: float) -> api.StreamConfig:
        return api.StreamConfig(
            name=Subjects.notification_stream(subject), subjects=[subject],
            retention=api.RetentionPolicy.INTEREST, storage=self._storage(),
            num_replicas=self.params.replicas, max_msgs_per_subject=max_length,
            max_age=ttl, discard=api.DiscardPolicy.OLD,
            duplicate_window=min(DEDUP_WINDOW, ttl))

    # -- consumers -------------------------------------------------------------

    async def ensure_feed(self, client: Client, stream: str, subject: str,
                          pool: str | None, *, new_only: bool, max_ack_pending: int,
                          deadline: float) -> tuple[Feed, api.ConsumerInfo]:
        """The durable consumer of ``subject`` (and ``pool``), made if missing."""
        consumer = Subjects.consumer(subject, pool)
        feed = Feed(stream, consumer, Subjects.deliver_subject(stream, consumer))
        config = api.ConsumerConfig(
            durable_name=consumer, deliver_subject=feed.deliver_subject,
            deliver_group=QUEUE_GROUP, filter_subject=subject,
            ack_policy=api.AckPolicy.EXPLICIT, ack_wait=self.params.ack_wait,
            max_ack_pending=max_ack_pending,
            deliver_policy=api.DeliverPolicy.NEW if new_only else api.DeliverPolicy.ALL)
        jsm = client.jsm()
        try:
            info = await self._until(deadline, lambda: jsm.add_consumer(stream, config))
        except APIError as exc:
            try:
                info = await self._until(deadline, lambda: jsm.consumer_info(stream, consumer))
            except NotFoundError:
                raise exc from None
            LOG.info("%s: JetStream consumer %s of %s exists with another configuration "
                     "(%s); using it", self.name, consumer, stream, exc.description)
        self._known_consumers.add((stream, consumer))
        return feed, info

    async def consumer_exists(self, client: Client, stream: str, consumer: str) -> bool:
        """Whether ``consumer`` exists (a positive answer is remembered; so is
        nothing when JetStream does not answer, which counts as yes)."""
        if (stream, consumer) in self._known_consumers:
            return True
        try:
            await client.jsm().consumer_info(stream, consumer, timeout=ATTEMPT_TIMEOUT)
        except NotFoundError:
            return False
        except (TimeoutError, nats.errors.Error) as exc:
            if no_jetstream(exc):
                return False
            # JetStream cannot tell now (a leader moving): publish anyway,
            # the stream keeps the message for whoever consumes it later
            LOG.debug("%s: could not look up consumer %s: %s", self.name, consumer,
                      safe_text(exc))
            return True
        self._known_consumers.add((stream, consumer))
        return True

    async def delete_consumer(self, client: Client, stream: str, consumer: str) -> None:
        """Delete a durable consumer; a missing one (or stream) is fine."""
        self._known_consumers.discard((stream, consumer))
        try:
            await client.jsm().delete_consumer(stream, consumer)
        except NotFoundError:
            pass

    async def stream_exists(self, client: Client, stream: str) -> bool:
        try:
            await stream_info(client, stream)
        except NotFoundError:
            return False
        return True

    # -- publishing ------------------------------------------------------------

    async def publish(self, client: Client, targets: Sequence[tuple[str, str]], body: bytes,
                      deadline: float) -> int | None:
        """Publish ``body`` to JetStream and wait for its acknowledgement.

        ``targets`` are ``(subject, stream)`` pairs: the first is tried
        first; while an attempt is not acknowledged (no leader, a lost
        acknowledgement, a server being replaced) the next one is tried at
        once, round and round, with a short pause after each round, until
        ``deadline``. The message id is the same throughout, so a retry to
        a stream that stored it already is stored once (each stream
        de-duplicates on its own: one stored in two streams is delivered
        twice, see :mod:`rpccore_nats.standby`).

        :returns: the index in ``targets`` of the one that stored it;
            ``None`` when no stream holds the first target's subject
            (nothing stored; with one target only).
        :raises TransportError: not acknowledged before ``deadline``, or refused.
        """
        msg_id = uuid.uuid4().hex
        last = "no answer"
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportError(f"{self.name}: JetStream did not acknowledge a message "
                                     f"for {targets[0][1]} in time: {last}")
            index = attempt % len(targets)
            subject, stream = targets[index]
            headers = {"Nats-Msg-Id": msg_id, "Nats-Expected-Stream": stream}
            try:
                reply = await client.request(subject, body, timeout=min(left, ATTEMPT_TIMEOUT),
                                             headers=headers)
            except nats.errors.NoRespondersError:
                # nobody holds the subject: the stream is missing, or has
                # no leader now (the others are tried; with one, look)
                if len(targets) == 1 and not await self._stream_exists_safely(client, stream):
                    return None
                last = "no JetStream server answered (a leader is being elected?)"
            except (TimeoutError, nats.errors.TimeoutError):
                last = "no acknowledgement within the attempt"
            except nats.errors.Error as exc:  # closed, draining, buffer full
                last = safe_text(exc)
            else:
                error = self._parse(reply.data).get("error")
                if not error:
                    return index
                last = f"{error.get('description', error)}"
                if error.get("code") not in (503, 408):  # a refusal, not a hiccup
                    raise TransportError(f"{self.name}: JetStream refused a message for "
                                         f"{stream}: {last}")
            attempt += 1
            if attempt % len(targets) == 0:  # a whole round failed
                await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))

    @staticmethod
    def _parse(data: bytes) -> dict[str, Any]:
        try:
            answer = json.loads(data)
        except ValueError:
            return {"error": {"description": "unreadable acknowledgement", "code": 0}}
        return answer if isinstance(answer, dict) else {}

    async def _stream_exists_safely(self, client: Client, stream: str) -> bool:
        try:
            return await self.stream_exists(client, stream)
        except Exception as exc:  # unknown: keep trying, unless there is no JetStream
            return not no_jetstream(exc)
