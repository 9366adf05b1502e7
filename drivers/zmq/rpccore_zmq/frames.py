"""Sending and reading whole multipart messages, and sockets shared by threads.

ZMQ sockets must not be used by two threads at once. A :class:`LockedSocket`
lets other threads *send* on a socket without waking its I/O loop (a thread
hand-off costs more than the send): every use of the socket holds its lock,
and the loop waits on the socket's ``ZMQ_FD`` only, never inside the socket
(see :mod:`rpccore_zmq.eventloop`).
"""

from __future__ import annotations

import threading
from typing import Any

import zmq

_POLLIN = int(zmq.POLLIN)
_NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE) | int(zmq.NOBLOCK)
_LAST = int(zmq.NOBLOCK)

# pyzmq's compiled socket methods, without the pure-Python layer over them
# (which converts every option and flag to an enum: a tenth of a call's cost)
_raw_send = zmq.backend.Socket.send
_raw_recv = zmq.backend.Socket.recv
_zmq_poll = zmq.backend.zmq_poll


def send_frames(sock: zmq.Socket[Any], frames: list[bytes]) -> None:
    """Send a multipart message without blocking.

    :raises zmq.Again: the peer's queue is full (nothing was sent: libzmq
        takes a multipart message whole or not at all).
    :raises zmq.ZMQError: the socket is closed or failed.
    """
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        _raw_send(sock, frame, _MORE if i < last else _LAST)


def send_frame(sock: zmq.Socket[Any], frame: bytes) -> None:
    """Send a message of one frame without blocking (see :func:`send_frames`)."""
    _raw_send(sock, frame, _LAST)


def recv_frames(sock: zmq.Socket[Any], flags: int = _NOBLOCK) -> list[bytes]:
    """Receive one whole multipart message.

    :raises zmq.Again: none is waiting (``NOBLOCK``), or the socket's
        receive timeout passed.
    """
    # as frames, whose "more" flag costs less to read than ZMQ_RCVMORE
    frame = _raw_recv(sock, flags, copy=False)
    parts: list[bytes] = [frame.bytes]
    while frame.more:
        frame = _raw_recv(sock, flags, copy=False)
        parts.append(frame.bytes)
    return parts


def recv_routed(sock: zmq.Socket[Any]) -> list[bytes]:
    """Receive one whole message on a ROUTER without blocking: the peer's
    identity (which a ROUTER always puts first, so it is read as bytes,
    without the frame object that tells whether more follow), then the
    frames the peer sent.

    :raises zmq.Again: none is waiting.
    """
    identity: bytes = _raw_recv(sock, _NOBLOCK)
    return [identity, *recv_frames(sock)]


def input_waiting(sock: zmq.Socket[Any]) -> bool:
    """Whether a message is waiting on ``sock``: its ``ZMQ_EVENTS``, read by
    ``zmq_poll`` with no timeout, which costs less than pyzmq's ``get``
    (that converts every option to an enum first)."""
    return bool(_zmq_poll([(sock, _POLLIN)], 0))


class LockedSocket:
    """A ZMQ socket shared by threads under a (re-entrant) lock.

    :ivar fd: the socket's ``ZMQ_FD``, which the loop waits on
    """

    __slots__ = ("socket", "lock", "fd", "_recv")

    def __init__(self, sock: zmq.Socket[Any], routed: bool = False) -> None:
        """``routed``: ``sock`` is a ROUTER (see :func:`recv_routed`)."""
        self.socket = sock
        self._recv = recv_routed if routed else recv_frames
        self.lock = threading.RLock()
        self.fd: int = int(sock.getsockopt(zmq.FD))

    def send(self, frames: list[bytes]) -> bool:
        """Send without blocking; True when input is waiting afterwards.

        :raises zmq.Again: the peer's queue is full.
        :raises zmq.ZMQError: the socket is closed or failed.
        """
        with self.lock:
            return self.send_locked(frames)

    def send_locked(self, frames: list[bytes]) -> bool:
        """:meth:`send`, for a caller that holds :attr:`lock`."""
        sock = self.socket
        send_frames(sock, frames)
        return input_waiting(sock)

    def readable(self) -> bool:
        """Whether input is waiting (call with the lock held)."""
        return input_waiting(self.socket)

    def receive(self, limit: int) -> list[list[bytes]]:
        """Up to ``limit`` whole messages, as many as are waiting (call with
        the lock held). Unless ``limit`` were read, ``ZMQ_EVENTS`` showed no
        more input, which re-arms the descriptor for the next message.

        The first read is tried blindly (the loop was woken for input, so
        there nearly always is one): an empty read raises inside pyzmq, which
        costs more than the ``ZMQ_EVENTS`` check that ends a batch.
        """
        sock, recv = self.socket, self._recv
        try:
            batch = [recv(sock)]
        except zmq.Again:
            return []
        while len(batch) < limit and input_waiting(sock):
            batch.append(recv(sock))
        return batch
