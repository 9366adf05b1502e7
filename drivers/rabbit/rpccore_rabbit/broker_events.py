"""What the broker sends unasked, as the :class:`~rpccore_rabbit.connection.Link`
handles it: deliveries to their consumers, publisher confirms and returns to
the :class:`~rpccore_rabbit.confirms.ConfirmTracker`, consumers the broker
ended, channels it closed, flow control. I/O thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rpccore_rabbit import wire
from rpccore_rabbit.confirms import ConfirmTracker

LOG = logging.getLogger(__name__)

#: ``handler(delivery_tag, body, properties)`` for one consumer tag
Consumer = Callable[[int, bytes, dict[str, Any]], None]


class BrokerEvents(wire.Listener):
    """The :class:`wire.Listener` half of a Link (see its attributes there)."""

    name: str
    conn: wire.AmqpConnection | None
    publisher: int
    consumer: int
    declarer: int
    consumers: dict[str, Consumer]
    cancelled: list[Callable[[Any, str], None]]
    confirms: ConfirmTracker

    def _flush(self) -> None:
        raise NotImplementedError

    def on_deliver(self, channel: int, consumer_tag: str, delivery_tag: int,
                   redelivered: bool, properties: dict[str, Any], body: bytes) -> None:
        handler = self.consumers.get(consumer_tag)
        if handler is None:  # cancelled meanwhile: back to the queue
            self._flush()
            assert self.conn is not None
            self.conn.send(self.consumer, "basic.reject", delivery_tag, True)
            return
        handler(delivery_tag, body, properties)

    def on_confirm(self, channel: int, delivery_tag: int, multiple: bool,
                   acked: bool) -> None:
        if channel == self.publisher:
            if acked:
                self.confirms.on_ack(delivery_tag, multiple)
            else:
                self.confirms.on_nack(delivery_tag, multiple)

    def on_return(self, channel: int, reply_code: int, reply_text: str,
                  properties: dict[str, Any]) -> None:
        self.confirms.on_return(properties.get("message_id"))

    def on_cancel(self, channel: int, consumer_tag: str) -> None:
        if self.consumers.pop(consumer_tag, None) is None:
            return
        LOG.warning("rabbit %s: the broker ended consumer %s (queue deleted, or its "
                    "node went down); consuming again", self.name, consumer_tag)
        for callback in list(self.cancelled):
            callback(self, consumer_tag)

    def on_channel_closed(self, channel: int, error: wire.ChannelClosed) -> None:
        if channel == self.declarer:
            return  # the next declaration opens another
        # the publishing or consuming channel: start over on a new connection
        raise wire.ConnectionClosed(0, f"the broker closed channel {channel}: {error}")

    def on_blocked(self, reason: str | None) -> None:
        if reason is None:
            LOG.warning("rabbit %s: the broker accepts messages again", self.name)
        else:
            LOG.warning("rabbit %s: the broker blocks publishing (%s): senders wait for "
                        "confirms until it recovers", self.name, reason)

