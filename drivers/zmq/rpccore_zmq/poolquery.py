"""Asking hosts which pools of a notification topic listen on them.

The matchmaker knows which hosts listen to a notification topic (its
interface has no room for pools); each of those hosts knows its own pools.
:func:`ask_pools` sends every host a POOLS request at once, on connections
of the call pool, and gathers the answers until all came or the time is up.
A host that does not answer in time, or is known dead, has no pools for
this look-up; the caller learns which hosts were silent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import zmq

from rpccore.errors import TransportError
from rpccore_zmq import protocol
from rpccore_zmq.callpool import CallPool
from rpccore_zmq.frames import recv_frames, send_frame
from rpccore_zmq.peers import PeerTable

LOG = logging.getLogger(__name__)

#: host -> the pool codes listening there
PoolsByHost = dict[str, list[str]]


class _Question:
    __slots__ = ("host", "endpoint", "seq", "socket")

    def __init__(self, host: str, endpoint: str, seq: int, sock: zmq.Socket[Any]) -> None:
        self.host = host
        self.endpoint = endpoint
        self.seq = seq
        self.socket = sock


def ask_pools(peers: PeerTable, pool: CallPool, hosts: list[str], topic: str,
              timeout: float) -> tuple[PoolsByHost, list[str]]:
    """The pools of ``topic`` on each of ``hosts`` that answered within
    ``timeout`` seconds (hosts with none are left out), and the hosts asked
    that did not answer."""
    poller = zmq.Poller()
    waiting: dict[zmq.Socket[Any], _Question] = {}
    request_topic = topic.encode("utf-8")
    for host in hosts:
        question = _ask(peers, pool, host, request_topic)
        if question is not None:
            waiting[question.socket] = question
            poller.register(question.socket, zmq.POLLIN)
    found: PoolsByHost = {}
    until = time.monotonic() + timeout
    try:
        while waiting and (left := until - time.monotonic()) > 0:
            for sock, _ in poller.poll(max(1, int(left * 1000))):
                question = waiting[sock]
                answered, codes = _read_answer(peers, question)
                if answered:
                    del waiting[sock]
                    poller.unregister(sock)
                    pool.give(question.endpoint, sock)
                    if codes:
                        found[question.host] = codes
    finally:
        for question in waiting.values():  # its answer may still come: not reused
            pool.give(question.endpoint, question.socket, False)
    silent = [question.host for question in waiting.values()]
    if silent:
        LOG.debug("no answer about the pools of %r from %s within %g s", topic,
                  ", ".join(silent), timeout)
    return found, silent


def _ask(peers: PeerTable, pool: CallPool, host: str, topic: bytes) -> _Question | None:
    try:
        endpoint = peers.endpoint_of(host)
    except ValueError:
        return None
    if endpoint in peers.dead:
        return None
    try:
        sock = pool.take(endpoint)
    except (TransportError, zmq.ZMQError) as exc:  # closed, or out of file descriptors
        LOG.debug("cannot ask %s for its pools: %s", host, exc)
        return None
    seq = next(peers.seq)
    try:
        send_frame(sock, protocol.request(protocol.POOLS, seq, topic, b"",
                                          protocol.POOLS_QUERY))
    except zmq.ZMQError:
        pool.give(endpoint, sock, False)
        return None
    return _Question(host, endpoint, seq, sock)


def _read_answer(peers: PeerTable, question: _Question) -> tuple[bool, list[str]]:
    """Read what ``question``'s connection has: ``(True, codes)`` once the
    host answered (a refusal is an answer: no pools)."""
    while True:
        try:
            frames = recv_frames(question.socket)
        except zmq.ZMQError:
            return False, []
        peers.heard[question.endpoint] = time.monotonic()
        try:
            kind, seq, body = protocol.parse_reply(frames)
            if seq != question.seq:
                continue  # for an earlier call on this connection that gave up
            if kind == protocol.REPLY:
                return True, protocol.decode_pools(body)
        except protocol.Malformed as exc:
            peers.malformed(question.endpoint, str(exc))
            continue
        if kind == protocol.REFUSED:
            return True, []
