"""rpccore for asyncio: the same cells, destinations and plugins, awaited.

>>> import rpccore.aio
>>> async def main() -> None:
...     async with rpccore.aio.RPC() as rpc:      # one 'default' cell, in memory
...         server = await rpc.serve("compute", [Compute()]).start()
...         print(await rpc.call({}, "compute", {"method": "add", "args": {"a": 1, "b": 2}}))

See docs/asyncio.rst. Where things live:

- :mod:`rpccore.aio.rpc`: :class:`RPC`, the entry point;
- :mod:`rpccore.aio.client`: :class:`Client` (versions, caps);
- :mod:`rpccore.aio.server`: :class:`Server`; async endpoint methods on the loop;
- :mod:`rpccore.aio.endpoints`: coroutines and async generators of endpoints;
- :mod:`rpccore.aio.calls`: sending a request and awaiting its replies;
- :mod:`rpccore.aio.stream`: ``async for`` over a streamed reply;
- :mod:`rpccore.aio.waiters`: reply waiters a loop awaits;
- :mod:`rpccore.aio.inbox`: handing results from other threads to the loop;
- :mod:`rpccore.aio.threads`: the threads that run whatever may block.
"""

from rpccore.aio.client import Client
from rpccore.aio.rpc import RPC
from rpccore.aio.server import Server
from rpccore.aio.stream import AsyncStreamReader

__all__ = ["RPC", "Client", "Server", "AsyncStreamReader"]
