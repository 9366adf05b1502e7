"""Counting the notifications JetStream dropped before a pool got them.

A pool's consumer numbers its deliveries (consumer sequence, one more per
delivery, redeliveries included) and each message carries its stream
sequence; every notification topic has a stream of its own, so each
stream sequence is one notification of the topic. When one listener
receives two deliveries with consecutive consumer sequences, no other
listener of the pool got anything in between, so the stream sequences
skipped between the two first deliveries are notifications JetStream
dropped (over ``notification_max_queue_length`` or older than
``notification_ttl``) without the pool ever seeing them.

That count is exact for a pool with one listening process; with several,
a gap between deliveries that went to different listeners is not seen by
any of them (never counted twice).
"""

from __future__ import annotations

from collections.abc import Callable


def delivery_numbers(ack_subject: str) -> tuple[int, int, int] | None:
    """``(times delivered, stream sequence, consumer sequence)`` from a
    JetStream acknowledgement subject, or ``None`` if it is not one.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>``,
    or with a domain and an account hash after ``ACK`` (and a trailing
    token) on newer servers. Parsed here: nats-py's ``Msg.metadata`` builds
    a datetime and dataclasses per message, which costs more than the rest.
    """
    tokens = ack_subject.split(".")
    if len(tokens) == 9:
        first = 4
    elif len(tokens) >= 11:
        first = 6
    else:
        return None
    try:
        return int(tokens[first]), int(tokens[first + 1]), int(tokens[first + 2])
    except ValueError:
        return None


class DropCounter:
    """Watches one listener's deliveries; calls ``on_drop(n)`` per gap."""

    def __init__(self, last_delivery: int, last_stream_seq: int,
                 on_drop: Callable[[int], None]) -> None:
        #: the pool's last delivery when the listener started (consumer info)
        self._last_delivery = last_delivery
        self._last_stream_seq: int | None = last_stream_seq
        self._on_drop = on_drop

    def see(self, delivery: int, stream_seq: int, times_delivered: int) -> None:
        """One delivery to this listener (loop thread, in order)."""
        contiguous = delivery == self._last_delivery + 1
        self._last_delivery = delivery
        last = self._last_stream_seq
        if times_delivered <= 1:
            if contiguous and last is not None and stream_seq > last + 1:
                self._on_drop(stream_seq - last - 1)
            if last is None or not contiguous or stream_seq > last:
                self._last_stream_seq = stream_seq
        elif not contiguous:
            # a redelivery after others' deliveries: the pool's position is unknown
            self._last_stream_seq = None
