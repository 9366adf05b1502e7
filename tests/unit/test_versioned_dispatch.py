"""Dispatch by version and namespace (docs/upgrades-and-long-calls.rst), on the dispatcher alone.

In the message's namespace, the first endpoint whose major equals the
message's, whose minor is at least the message's, and that has the method;
``rpccore.UnsupportedVersion`` when the method exists there at no compatible
version, ``rpccore.NoSuchMethod`` when no endpoint of the namespace has it.
"""

from __future__ import annotations

from typing import Any

import pytest

from rpccore.dispatcher import Dispatcher, parse_version, version_compatible


class Endpoint:
    def __init__(self, version: str | None, namespace: str | None, *methods: str) -> None:
        if version is not None:
            self.rpc_version = version
        if namespace is not None:
            self.rpc_namespace = namespace
        self.label = f"{namespace}@{version}"
        for name in methods:
            setattr(self, name, self._answer)

    def _answer(self, ctx: dict[str, Any]) -> str:
        return self.label


def run(d: Dispatcher, method: str, namespace: str | None, version: str) -> Any:
    result, fail = d.dispatch({}, method, {}, namespace, version)
    return result if fail is None else fail["type"]


def test_versions_parse_and_compare_by_major_then_minor() -> None:
    assert parse_version("2.10") == (2, 10)
    for bad in ("2", "2.", ".1", "a.b", "2.1.0", "-1.0", "２.１", 2.1, None):
        with pytest.raises(ValueError):
            parse_version(bad)  # type: ignore[arg-type]
    assert version_compatible("2.3", "2.1")
    assert version_compatible("2.3", "2.3")
    assert version_compatible("2.10", "2.9")  # numbers, not strings
    assert not version_compatible("2.3", "2.4")
    assert not version_compatible("2.3", "1.0")
    assert not version_compatible("1.9", "2.0")


def test_the_first_compatible_endpoint_of_the_namespace_answers() -> None:
    d = Dispatcher([Endpoint("1.4", "compute", "which"),
                    Endpoint("2.1", "compute", "which"),
                    Endpoint("2.5", "compute", "which"),
                    Endpoint("2.9", "storage", "which")])
    assert run(d, "which", "compute", "1.0") == "compute@1.4"
    assert run(d, "which", "compute", "1.4") == "compute@1.4"
    assert run(d, "which", "compute", "2.0") == "compute@2.1"  # first, not highest
    assert run(d, "which", "compute", "2.3") == "compute@2.5"
    assert run(d, "which", "storage", "2.9") == "storage@2.9"


def test_an_endpoint_without_the_method_is_passed_over() -> None:
    d = Dispatcher([Endpoint("2.5", "compute", "reboot"),
                    Endpoint("2.1", "compute", "resize", "reboot")])
    assert run(d, "resize", "compute", "2.0") == "compute@2.1"
    assert run(d, "reboot", "compute", "2.0") == "compute@2.5"


def test_unsupported_version_when_the_method_exists_at_no_compatible_version() -> None:
    d = Dispatcher([Endpoint("2.1", "compute", "which"), Endpoint("3.0", "compute", "which")])
    assert run(d, "which", "compute", "2.2") == "rpccore.UnsupportedVersion"  # minor too high
    assert run(d, "which", "compute", "1.0") == "rpccore.UnsupportedVersion"  # major gone
    assert run(d, "which", "compute", "4.0") == "rpccore.UnsupportedVersion"
    _, fail = d.dispatch({}, "which", {}, "compute", "2.2")
    assert fail is not None and "2.1, 3.0" in fail["message"]


def test_no_such_method_when_no_endpoint_of_the_namespace_has_it() -> None:
    d = Dispatcher([Endpoint("2.1", "compute", "which"), Endpoint(None, None, "plain")])
    assert run(d, "missing", "compute", "2.1") == "rpccore.NoSuchMethod"
    assert run(d, "plain", "compute", "1.0") == "rpccore.NoSuchMethod"  # other namespace
    assert run(d, "which", None, "2.1") == "rpccore.NoSuchMethod"
    assert run(d, "which", "storage", "2.1") == "rpccore.NoSuchMethod"
    assert run(d, "_answer", "compute", "2.1") == "rpccore.NoSuchMethod"  # private


def test_defaults_are_version_1_0_and_no_namespace() -> None:
    d = Dispatcher([Endpoint(None, None, "plain")])
    assert run(d, "plain", None, "1.0") == "None@None"
    assert run(d, "plain", None, "1.1") == "rpccore.UnsupportedVersion"
    assert d.versions() == {"": "1.0"}


def test_versions_announce_the_highest_of_each_namespace() -> None:
    d = Dispatcher([Endpoint("1.4", "compute", "a"), Endpoint("2.1", "compute", "a"),
                    Endpoint("1.10", "storage", "a"), Endpoint("1.9", "storage", "a")])
    assert d.versions() == {"compute": "2.1", "storage": "1.10"}


def test_a_malformed_endpoint_version_is_refused_when_serving_starts() -> None:
    with pytest.raises(ValueError):
        Dispatcher([Endpoint("two", "compute", "a")])
