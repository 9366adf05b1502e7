"""Notifications: events emitted once and delivered to every pool of
listeners (docs/notifications.rst).

- :mod:`.notifier`: :class:`Notifier`, built by ``rpc.notifier(publisher_id)``;
- :mod:`.listener`: :class:`Listener`, built by ``rpc.listener(topics, endpoints)``,
  with :mod:`.dispatch` (endpoint methods named after priorities) and
  :mod:`.batch` (batch listeners);
- :mod:`.filter`: :class:`NotificationFilter`, an endpoint's ``filter_rule``;
- :mod:`.message`: priorities, :data:`REQUEUE`, the envelope and what
  endpoints receive.

Drivers carry them through :meth:`rpccore.Driver.notify` and
:meth:`rpccore.Driver.listen`; see docs/notifications.rst.
"""

from rpccore.notify.filter import NotificationFilter
from rpccore.notify.listener import Listener
from rpccore.notify.message import PRIORITIES, REQUEUE, Notification, NotificationResult
from rpccore.notify.notifier import Notifier

__all__ = ["Listener", "Notification", "NotificationFilter", "NotificationResult",
           "Notifier", "PRIORITIES", "REQUEUE"]
