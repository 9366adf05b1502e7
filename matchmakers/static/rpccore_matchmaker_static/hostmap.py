"""The ``static_hosts`` option type: a map from topic to a list of hosts.

Two spellings are accepted, so that any topic can be configured:

* compact, for everyday topics::

      static_hosts = compute:127.0.0.2;127.0.0.3:9600, scheduler:10.0.0.1

  Topics are separated by ``,``; the first ``:`` ends the topic; hosts are
  separated by ``;``. Whitespace around each part is ignored. A topic here
  cannot contain ``,`` or ``:`` and cannot start or end with whitespace.

* JSON, for any topic at all (the value starts with ``{``)::

      static_hosts = {"compute": ["127.0.0.2", "127.0.0.3:9600"], "a:b,c": ["10.0.0.1"]}

A Python ``dict`` (``set_override``, ``add_cell`` keywords) is accepted as
well. A topic mapped to no hosts (``compute:`` or ``"compute": []``) has no
hosts even when ``default_hosts`` is set.
"""

from __future__ import annotations

import json
import re
from typing import Any

from oslo_config import types

#: Characters a host never contains: they separate hosts in the options.
_BAD_HOST = re.compile(r"[\s,;]")


def check_host(host: object, topic: str) -> str:
    """``host`` if it is a usable host string.

    :raises ValueError: not a string, empty, or containing whitespace, ``,``
        or ``;``.
    """
    if not isinstance(host, str) or not host:
        raise ValueError(f"topic {topic!r}: host {host!r} is not a non-empty string")
    if _BAD_HOST.search(host):
        raise ValueError(f"topic {topic!r}: host {host!r} contains whitespace, ',' or ';'")
    return host


def _from_mapping(value: dict[Any, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for topic, hosts in value.items():
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"topic {topic!r} is not a non-empty string")
        if isinstance(hosts, str):  # a dict built in code may give one host
            hosts = [hosts]
        if not isinstance(hosts, (list, tuple)):
            raise ValueError(f"topic {topic!r}: hosts must be a list of strings, "
                             f"not {type(hosts).__name__}")
        checked: list[str] = []
        for host in hosts:
            if check_host(host, topic) not in checked:
                checked.append(host)
        result[topic] = checked
    return result


def _from_compact(text: str) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        topic, sep, hosts = pair.partition(":")
        topic = topic.strip()
        if not sep or not topic:
            raise ValueError(f"{pair.strip()!r} is not TOPIC:HOST[;HOST...] (for topics "
                             f"containing ',' or ':' give the whole value as JSON)")
        if topic in result:
            raise ValueError(f"topic {topic!r} is given twice")
        result[topic] = [h.strip() for h in hosts.split(";") if h.strip()]
    return _from_mapping(result)


class HostMap(types.ConfigType):
    """oslo.config type of ``static_hosts``: ``dict[str, list[str]]``."""

    def __init__(self) -> None:
        super().__init__(type_name="topic to hosts map")

    def __call__(self, value: Any) -> dict[str, list[str]]:
        """Parse ``value`` (str or dict).

        :raises ValueError: malformed JSON, a JSON value that is not an object
            of lists of strings, a compact pair without ``:``, a repeated
            topic, or a bad host.
        """
        if isinstance(value, dict):
            return _from_mapping(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a string or dict, not {type(value).__name__}")
        text = value.strip()
        if not text.startswith("{"):
            return _from_compact(text)
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                             f"{exc.msg}") from None
        if not isinstance(parsed, dict):
            raise ValueError("JSON value must be an object {\"topic\": [\"host\", ...]}")
        return _from_mapping(parsed)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return "HostMap"

    def _formatter(self, value: Any) -> str:
        # JSON always round-trips, whatever the topics contain.
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
