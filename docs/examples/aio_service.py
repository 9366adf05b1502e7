"""An asyncio service on rpccore: an inventory that other services call.

Run it as it is (one in-memory cell: the server and a demo client in one
process)::

    python docs/examples/aio_service.py

or against a real cell, server and client in two processes::

    python docs/examples/aio_service.py --config-file app.conf serve
    python docs/examples/aio_service.py --config-file app.conf client
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from oslo_config import cfg

import rpccore
import rpccore.aio


class Inventory:
    """The endpoint: async methods run on the server's event loop."""

    rpc_version = "1.1"
    rpc_namespace = "inventory"

    def __init__(self) -> None:
        self.stock: dict[str, int] = {"bolt": 120, "nut": 80}
        self.lock = asyncio.Lock()

    async def reserve(self, ctx: dict[str, Any], item: str, count: int) -> int:
        """Take ``count`` of ``item``; returns what is left."""
        async with self.lock:
            left = self.stock.get(item, 0)
            if left < count:
                raise ValueError(f"only {left} {item} left")
            self.stock[item] = left - count
            return left - count

    async def watch(self, ctx: dict[str, Any], item: str, every: float) -> AsyncIterator[int]:
        """Stream the stock of ``item`` until the caller stops reading."""
        while True:
            yield self.stock.get(item, 0)
            await asyncio.sleep(every)

    def report(self, ctx: dict[str, Any]) -> dict[str, int]:
        """A plain method: runs on one of the server's worker threads."""
        return dict(self.stock)


async def serve(rpc: rpccore.aio.RPC, stop: asyncio.Event,
                serving: asyncio.Event) -> None:
    """Serve the inventory until ``stop`` is set, then finish what was taken;
    ``serving`` is set once requests reach it."""
    server = await rpc.serve(rpc.make_destination("inventory", host="depot-1"),
                             [Inventory()]).start()
    serving.set()
    await stop.wait()
    await server.stop(timeout=10)


async def use(rpc: rpccore.aio.RPC) -> None:
    """What a caller does: calls, errors, a stream, a bounded wait."""
    inventory = rpc.client("inventory", namespace="inventory", timeout=5).prepare(
        version="1.1")
    print("left:", await inventory.call({"user": "alice"}, "reserve", item="bolt", count=20))
    try:
        await inventory.call({"user": "alice"}, "reserve", item="nut", count=500)
    except rpccore.RemoteError as err:
        print("refused:", err.exc_type, err.value)
    # many calls at once, one task each
    lefts = await asyncio.gather(*(inventory.call({}, "reserve", item="bolt", count=1)
                                   for _ in range(10)))
    print("after ten more:", min(lefts))
    async for count in inventory.stream({}, "watch", item="bolt", every=0.1):
        print("stock of bolts:", count)
        break  # leaving the loop stops the server's generator
    try:
        async with asyncio.timeout(1):  # as timeout=1: the call is abandoned
            print(await inventory.call({}, "report"))
    except TimeoutError:
        print("no report within a second")


async def main(argv: list[str]) -> None:
    conf = cfg.ConfigOpts()
    conf.register_cli_opt(cfg.StrOpt("role", positional=True, required=False, default="both",
                                     choices=["serve", "client", "both"]))
    conf(argv, project="inventory")
    async with rpccore.aio.RPC(conf) as rpc:
        stop = asyncio.Event()
        if conf.role in ("serve", "both"):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            ready = asyncio.Event()
            serving = asyncio.create_task(serve(rpc, stop, ready))
            if conf.role == "serve":
                await serving
                return
            await ready.wait()  # (a real client waits for the service elsewhere)
        await use(rpc)
        stop.set()
        if conf.role == "both":
            await serving


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
