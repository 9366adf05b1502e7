"""Destinations: where a message goes, as a structured value.

Topic, host and cell are opaque strings. Nothing in rpccore splits or joins
them on a delimiter; drivers encode them so that any two different
destinations reach different consumers.
"""

from __future__ import annotations

from typing import NamedTuple

from rpccore.errors import InvalidDestination


class Destination(NamedTuple):
    """An immutable, hashable address of a message.

    :ivar topic: the service's topic (``"compute"``); never empty
    :ivar host: a host consuming the topic, or ``None`` for any consumer
    :ivar cell: the cell to use, or ``None`` for the default cell
    :ivar fanout: deliver to every consumer of the topic
    """

    topic: str
    host: str | None = None
    cell: str | None = None
    fanout: bool = False

    def __str__(self) -> str:
        parts = [f"topic={self.topic!r}"]
        if self.host is not None:
            parts.append(f"host={self.host!r}")
        if self.cell is not None:
            parts.append(f"cell={self.cell!r}")
        if self.fanout:
            parts.append("fanout")
        return "Destination(" + ", ".join(parts) + ")"

    def to_dict(self) -> dict[str, object]:
        """The destination as an envelope carries it: ``host`` and ``cell``
        only where they are set."""
        fields: dict[str, object] = {"topic": self.topic, "fanout": self.fanout}
        if self.host is not None:
            fields["host"] = self.host
        if self.cell is not None:
            fields["cell"] = self.cell
        return fields


def _check_part(name: str, value: object, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise InvalidDestination(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidDestination(f"{name} must not be empty")


def make_destination(topic: str, host: str | None = None, cell: str | None = None,
                     fanout: bool = False) -> Destination:
    """Build a :class:`Destination`, checking its parts.

    :raises InvalidDestination: empty or non-string topic, empty host or cell,
        or a fanout destination that also names a host.
    """
    _check_part("topic", topic, optional=False)
    _check_part("host", host, optional=True)
    _check_part("cell", cell, optional=True)
    if fanout and host is not None:
        raise InvalidDestination("a fanout destination cannot name a host")
    return Destination(topic, host, cell, bool(fanout))


def as_destination(value: Destination | str) -> Destination:
    """Accept a :class:`Destination` or a plain topic string."""
    if isinstance(value, Destination):
        _check_part("topic", value.topic, optional=False)
        return value
    if type(value) is str and value:
        return Destination(value)
    if isinstance(value, str):
        return make_destination(value)
    raise InvalidDestination(
        f"a destination is a rpccore.Destination or a topic string, not {type(value).__name__}")


def served_destination(value: Destination | str) -> Destination:
    """:func:`as_destination` for a server: a topic (and host), never a
    fanout (a server subscribes to its topic's fanout by itself).

    :raises InvalidDestination: a fanout or malformed destination.
    """
    dest = as_destination(value)
    if dest.fanout:
        raise InvalidDestination("serve a topic (and host); fanout is subscribed for you")
    return dest


#: destinations already checked, with their envelope form (see resolve)
_RESOLVED: dict[Destination | str, tuple[Destination, dict[str, object]]] = {}
#: how many :func:`resolve` keeps (a process sends to a few hundred at most;
#: past this the cache starts over)
RESOLVED_MAX = 4096


def resolve(value: Destination | str) -> tuple[Destination, dict[str, object]]:
    """:func:`as_destination`, with the destination's envelope form
    (:meth:`Destination.to_dict`: do not modify it), remembered for the next
    message to the same place.

    :raises InvalidDestination: as :func:`as_destination`.
    """
    # only the exact types: a plain tuple equal to a Destination is refused
    try:
        found = _RESOLVED.get(value) if type(value) in (str, Destination) else None
    except TypeError:  # a Destination holding something unhashable
        found = None
    if found is None:
        dest = as_destination(value)  # raises for anything not to remember
        found = (dest, dest.to_dict())
        if len(_RESOLVED) >= RESOLVED_MAX:
            _RESOLVED.clear()
        _RESOLVED[value] = found
    return found
