"""``version_cap="auto"`` when no server answers the discovery (memory driver).

An empty answer is not cached for ``version_cap_cache_seconds``: discovery
is tried again after ``EMPTY_RETRY_SECONDS``, and a cap known before stays
meanwhile (a moment with every server down must not lift it).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from rpccore import version_cap
from rpccore.testing import memory_rpc, wait_until


class Compute:
    rpc_namespace = "compute"

    def __init__(self, version: str) -> None:
        self.rpc_version = version

    def which(self, ctx: dict[str, Any]) -> str:
        return self.rpc_version


@pytest.fixture(autouse=True)
def _retry_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version_cap, "EMPTY_RETRY_SECONDS", 0.2)


def test_no_server_means_no_cap_until_one_answers_not_for_the_cache_time() -> None:
    with memory_rpc(version_cap_cache_seconds=60.0, version_discovery_window=0.1) as rpc:
        client = rpc.client("compute", version_cap="auto", namespace="compute", timeout=5)
        assert client.can_send_version("2.3")  # nobody to ask: no cap (documented)
        rpc.serve("compute", [Compute("2.1")]).start()
        # the empty answer was not kept for 60 s: the next try finds the server
        assert wait_until(lambda: not client.can_send_version("2.3"), timeout=5)
        assert client.can_send_version("2.1")


def test_a_known_cap_stays_while_no_server_answers(caplog: pytest.LogCaptureFixture) -> None:
    with memory_rpc(version_cap_cache_seconds=0.1, version_discovery_window=0.1) as rpc:
        old = rpc.serve("compute", [Compute("2.1")]).start()
        client = rpc.client("compute", version_cap="auto", namespace="compute", timeout=5)
        assert not client.can_send_version("2.3")
        old.stop()
        assert old.wait(5)
        with caplog.at_level(logging.WARNING, logger="rpccore.version_cap"):
            end = time.monotonic() + 1.0  # several discoveries, all empty
            while time.monotonic() < end:
                assert not client.can_send_version("2.3"), "an empty answer lifted the cap"
                time.sleep(0.05)
        assert "keeping the cap 2.1" in caplog.text
        rpc.serve("compute", [Compute("2.3")]).start()
        assert wait_until(lambda: client.can_send_version("2.3"), timeout=5)


def test_a_failing_discovery_is_retried_soon_without_blocking_callers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with memory_rpc(version_cap_cache_seconds=60.0, version_discovery_window=0.1) as rpc:
        asked: list[float] = []
        real_ping = rpc.ping

        def failing_ping(dest: Any, timeout: float | None = None) -> Any:
            asked.append(time.monotonic())
            if len(asked) == 1:
                from rpccore.errors import TransportError
                raise TransportError("broker gone")
            return real_ping(dest, timeout=timeout)

        monkeypatch.setattr(rpc, "ping", failing_ping)
        rpc.serve("compute", [Compute("2.1")]).start()
        client = rpc.client("compute", version_cap="auto", namespace="compute", timeout=5)
        assert client.can_send_version("2.3")  # the discovery failed: no cap yet
        start = time.monotonic()
        assert client.can_send_version("2.3")  # not asked again at once, nor blocking
        assert time.monotonic() - start < 0.05 and len(asked) == 1
        assert wait_until(lambda: not client.can_send_version("2.3"), timeout=5)
