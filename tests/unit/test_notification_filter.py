"""NotificationFilter: regular expressions on the fields of a notification."""

from __future__ import annotations

from typing import Any

import pytest

from rpccore import NotificationFilter


def matches(rule: NotificationFilter, ctx: dict[str, Any] | None = None,
            publisher_id: str = "compute.host1", event_type: str = "compute.instance.create",
            payload: Any = None) -> bool:
    return rule.matches(ctx or {}, publisher_id, event_type, payload)


def test_an_empty_filter_matches_everything() -> None:
    assert matches(NotificationFilter())
    assert matches(NotificationFilter(), payload=[1, 2])


def test_expressions_match_from_the_start_of_the_value() -> None:
    rule = NotificationFilter(event_type=r"compute\.instance\.")
    assert matches(rule)
    assert not matches(rule, event_type="x.compute.instance.create")
    whole = NotificationFilter(publisher_id="^compute$")
    assert not matches(whole)
    assert matches(whole, publisher_id="compute")
    assert matches(NotificationFilter(publisher_id="compute\\.host[0-9]+$"))


def test_every_given_part_must_match() -> None:
    rule = NotificationFilter(publisher_id="compute", event_type="compute.instance",
                              context={"project": "^p1$"}, payload={"state": "active"})
    assert matches(rule, ctx={"project": "p1"}, payload={"state": "active"})
    assert not matches(rule, ctx={"project": "p2"}, payload={"state": "active"})
    assert not matches(rule, ctx={"project": "p1"}, payload={"state": "deleted"})
    assert not matches(rule, ctx={"project": "p1"}, payload={"state": "active"},
                       publisher_id="api")


def test_context_and_payload_keys_must_exist_and_may_nest() -> None:
    rule = NotificationFilter(payload={"instance": {"flavor": {"name": "^m1\\."}}})
    assert matches(rule, payload={"instance": {"flavor": {"name": "m1.small"}}})
    assert not matches(rule, payload={"instance": {"flavor": {"name": "x1.small"}}})
    assert not matches(rule, payload={"instance": {"flavor": "m1.small"}})
    assert not matches(rule, payload={"instance": {}})
    assert not matches(rule, payload={})
    assert not matches(rule, payload=None)
    assert not matches(rule, payload=["instance"])
    assert not matches(NotificationFilter(context={"user": "."}), ctx={})


def test_numbers_booleans_and_null_match_as_their_json_text() -> None:
    def payload_matches(pattern: str, value: Any) -> bool:
        return matches(NotificationFilter(payload={"v": pattern}), payload={"v": value})

    assert payload_matches("^42$", 42)
    assert payload_matches("^42$", "42")
    assert payload_matches("^1\\.5$", 1.5)
    assert payload_matches("^true$", True)
    assert payload_matches("^null$", None)
    assert not payload_matches("^True$", True)
    assert not payload_matches(".*", [1])
    assert not payload_matches(".*", {"a": 1})


def test_bad_filters_are_refused_with_the_part_named() -> None:
    with pytest.raises(ValueError, match="event_type: bad regular expression"):
        NotificationFilter(event_type="(")
    with pytest.raises(ValueError, match=r"payload\['a'\]\['b'\]"):
        NotificationFilter(payload={"a": {"b": "["}})
    with pytest.raises(ValueError, match="context"):
        NotificationFilter(context="user")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="publisher_id"):
        NotificationFilter(publisher_id=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"payload\['n'\]"):
        NotificationFilter(payload={"n": 5})


def test_repr_names_what_was_given() -> None:
    rule = NotificationFilter(event_type="a", payload={"b": "c"})
    assert repr(rule) == "<NotificationFilter event_type='a', payload={'b': 'c'}>"
