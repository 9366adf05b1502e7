"""Notifiers and listeners refuse bad input before anything is sent, and
choose their cell from ``[rpccore] notification_cell``."""

from __future__ import annotations

from typing import Any

import pytest
from oslo_config import cfg

import rpccore
from rpccore import InvalidDestination, InvalidMessage
from rpccore.testing import NotificationRecorder, memory_rpc


class Infos:
    def info(self, ctx: dict[str, Any], publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, str]) -> None:
        pass


def sent(rpc: rpccore.RPC) -> int:
    return rpc.stats()[rpc.default_cell]["notifications_sent"]


def test_notifier_refuses_bad_input_before_sending() -> None:
    with memory_rpc() as rpc:
        rpc.listener(["notifications"], [Infos()]).start()
        for publisher_id in ("", None, 5):
            with pytest.raises(InvalidMessage):
                rpc.notifier(publisher_id)  # type: ignore[arg-type]
        for topics in ("notifications", [], [""], [None], 5):
            with pytest.raises(InvalidDestination):
                rpc.notifier("pub", topics=topics)  # type: ignore[arg-type]
        with pytest.raises(InvalidDestination, match="write \\['notifications'\\]"):
            rpc.notifier("pub", topics="notifications")
        with pytest.raises(InvalidDestination):
            rpc.notifier("pub", cell="no-such-cell")
        notifier = rpc.notifier("pub")
        for event_type in ("", None, 3):
            with pytest.raises(InvalidMessage):
                notifier.info({}, event_type, {})  # type: ignore[arg-type]
        with pytest.raises(InvalidMessage):
            notifier.info({}, "e", {"s": {1, 2}})
        with pytest.raises(InvalidMessage):
            notifier.info({}, "e", float("nan"))
        with pytest.raises(InvalidMessage):
            notifier.info(object(), "e", {})
        with pytest.raises(InvalidMessage, match="max_message_size"):
            notifier.info({}, "e", "x" * (2 * 1024 * 1024))
        assert sent(rpc) == 0
        notifier.info({}, "e", {"fine": True})
        assert sent(rpc) == 1


def test_listener_refuses_bad_input() -> None:
    with memory_rpc(server_queue_size=8) as rpc:
        with pytest.raises(InvalidDestination):
            rpc.listener("notifications", [Infos()])  # type: ignore[arg-type]
        with pytest.raises(InvalidDestination):
            rpc.listener([], [Infos()])
        for pool in ("", 5):
            with pytest.raises(InvalidDestination):
                rpc.listener(["n"], [Infos()], pool=pool)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="named after a priority"):
            rpc.listener(["n"], [object()])
        with pytest.raises(ValueError, match="named after a priority"):
            rpc.listener(["n"], [])
        bad_rule = Infos()
        bad_rule.filter_rule = {"event_type": "x"}  # type: ignore[attr-defined]
        with pytest.raises(ValueError, match="filter_rule"):
            rpc.listener(["n"], [bad_rule])
        for size in (0, -1, 2.5, True):
            with pytest.raises(ValueError, match="batch_size"):
                rpc.listener(["n"], [Infos()], batch_size=size)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="server_queue_size=8"):
            rpc.listener(["n"], [Infos()], batch_size=9)
        for timeout in (0, -1, "1", True):
            with pytest.raises(ValueError, match="batch_timeout"):
                rpc.listener(["n"], [Infos()], batch_size=2,
                             batch_timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(InvalidDestination):
            rpc.listener(["n"], [Infos()], cell="no-such-cell")
        listener = rpc.listener(["n"], [Infos()]).start()
        with pytest.raises(RuntimeError, match="starts once"):
            listener.start()


def two_cells(notification_cell: str | None) -> rpccore.RPC:
    conf = cfg.ConfigOpts()
    rpc = rpccore.RPC(conf)
    if notification_cell is not None:
        conf.set_override("notification_cell", notification_cell, group="rpccore")
    rpc.remove_cell(rpc.default_cell)
    rpc.add_cell("default", "memory:///cells-main")
    rpc.add_cell("events", "memory:///cells-events")
    return rpc


def test_notification_cell_is_the_default_for_notifiers_and_listeners() -> None:
    with two_cells("events") as rpc:
        assert rpc.notifier("pub").cell.name == "events"
        assert rpc.listener(["n"], [Infos()]).cell.name == "events"
        assert rpc.notifier("pub", cell="default").cell.name == "default"
        assert rpc.listener(["n"], [Infos()], cell="default").cell.name == "default"
        recorder = NotificationRecorder()
        rpc.listener(["n"], [recorder]).start()
        rpc.notifier("pub", topics=["n"]).info({}, "e", 1)
        assert [n.payload for n in recorder.wait_for(1)] == [1]
        assert rpc.stats()["events"]["notifications_sent"] == 1
    with two_cells(None) as rpc:
        assert rpc.notifier("pub").cell.name == rpc.default_cell
    with two_cells("nowhere") as rpc, pytest.raises(InvalidDestination, match="nowhere"):
        rpc.notifier("pub")


def test_notifier_on_a_driver_without_notifications_is_a_config_error() -> None:
    from rpccore.drivers.memory import MemoryDriver
    from rpccore.errors import ConfigError

    class OldDriver(MemoryDriver):  # a driver written before notifications existed
        notify = rpccore.Driver.notify
        listen = rpccore.Driver.listen

    with memory_rpc() as rpc:
        cell = rpc.cell()
        cell._driver = OldDriver(cell)
        with pytest.raises(ConfigError, match="does not carry notifications"):
            rpc.notifier("pub").info({}, "e", {})
        with pytest.raises(ConfigError, match="does not carry notifications"):
            rpc.listener(["n"], [Infos()]).start()
        assert sent(rpc) == 0
