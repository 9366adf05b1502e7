"""``rpccore.NotificationFilter``: which notifications an endpoint wants."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Union

# A pattern, or (for nested dicts) a mapping of keys to patterns.
_Patterns = Union["re.Pattern[str]", dict[str, "_Patterns"]]


def _compile(what: str, pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ValueError(f"NotificationFilter {what}: a regular expression string, "
                         f"not {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"NotificationFilter {what}: bad regular expression "
                         f"{pattern!r}: {exc}") from None


def _compile_tree(what: str, patterns: Mapping[str, Any]) -> dict[str, _Patterns]:
    if not isinstance(patterns, Mapping):
        raise ValueError(f"NotificationFilter {what}: a dict of keys to regular "
                         f"expressions, not {patterns!r}")
    tree: dict[str, _Patterns] = {}
    for key, pattern in patterns.items():
        where = f"{what}[{key!r}]"
        tree[key] = (_compile_tree(where, pattern) if isinstance(pattern, Mapping)
                     else _compile(where, pattern))
    return tree


def _text(value: Any) -> str | None:
    """What a pattern is matched against: strings as they are, numbers,
    booleans and null as their JSON text; nothing for lists and dicts."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _tree_matches(tree: dict[str, _Patterns], data: Any) -> bool:
    if not isinstance(data, Mapping):
        return False
    for key, pattern in tree.items():
        if key not in data:
            return False
        value = data[key]
        if isinstance(pattern, dict):
            if not _tree_matches(pattern, value):
                return False
            continue
        text = _text(value)
        if text is None or pattern.match(text) is None:
            return False
    return True


class NotificationFilter:
    """Set as an endpoint's ``filter_rule`` so that its methods receive only
    the notifications that match every given part.

    Each part is a regular expression matched from the start of the value
    (``re.match``: ``"compute\\."`` matches ``"compute.instance.create"``;
    end it with ``$`` to match the whole value). ``context`` and ``payload``
    map keys to expressions, or to dicts of the same shape for nested
    values; each key must be present and its value match. Strings are
    matched as they are; numbers, booleans and null as their JSON text
    (``42``, ``true``, ``null``); a list or dict never matches an
    expression.

    >>> NotificationFilter(event_type=r"compute\\.instance\\.create\\.",
    ...                    payload={"state": "^active$"})  # doctest: +ELLIPSIS
    <NotificationFilter ...>

    :raises ValueError: a part is not a valid regular expression (or dict of
        them).
    """

    def __init__(self, publisher_id: str | None = None, event_type: str | None = None,
                 context: Mapping[str, Any] | None = None,
                 payload: Mapping[str, Any] | None = None) -> None:
        self._publisher_id = (None if publisher_id is None
                              else _compile("publisher_id", publisher_id))
        self._event_type = None if event_type is None else _compile("event_type", event_type)
        self._context = None if context is None else _compile_tree("context", context)
        self._payload = None if payload is None else _compile_tree("payload", payload)
        self._given = {name: value for name, value in (
            ("publisher_id", publisher_id), ("event_type", event_type),
            ("context", context), ("payload", payload)) if value is not None}

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={value!r}" for name, value in self._given.items())
        return f"<NotificationFilter {parts}>"

    def matches(self, ctx: Mapping[str, Any], publisher_id: str, event_type: str,
                payload: Any) -> bool:
        """Whether a notification with these fields passes the filter."""
        if self._event_type is not None and self._event_type.match(event_type) is None:
            return False
        if self._publisher_id is not None and self._publisher_id.match(publisher_id) is None:
            return False
        if self._context is not None and not _tree_matches(self._context, ctx):
            return False
        return self._payload is None or _tree_matches(self._payload, payload)
