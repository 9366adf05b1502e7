"""rpccore: RPC for control planes that span many cells.

>>> import rpccore
>>> rpc = rpccore.RPC()                      # one 'default' cell, in memory
>>> dest = rpc.make_destination("compute", host="compute1")
"""

from rpccore.api import call, cast, get_rpc, init, serve
from rpccore.cell import Cell
from rpccore.client import Client
from rpccore.destination import Destination, make_destination
from rpccore.driver import Driver, Incoming, Subscription
from rpccore.errors import (
                            ConfigError,
                            InvalidDestination,
                            InvalidMessage,
                            RemoteError,
                            RPCError,
                            Timeout,
                            TransportError,
                            Undeliverable,
                            VersionCapError,
)
from rpccore.interceptors import IncomingRequest, Interceptor, OutgoingRequest
from rpccore.matchmaker import MatchMaker
from rpccore.notify import REQUEUE, NotificationFilter
from rpccore.rpc import RPC
from rpccore.server import Server

__all__ = [
    "RPC", "Cell", "Destination", "Driver", "Incoming", "MatchMaker", "Server",
    "Subscription", "make_destination", "init", "get_rpc", "cast", "call", "serve",
    "RPCError", "InvalidDestination", "InvalidMessage", "ConfigError", "Timeout",
    "RemoteError", "Undeliverable", "TransportError", "VersionCapError", "Client",
    "NotificationFilter", "REQUEUE",
    "Interceptor", "OutgoingRequest", "IncomingRequest",
]
