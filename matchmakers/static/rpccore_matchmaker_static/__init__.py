"""rpccore matchmaker ``static``: hosts of each topic from the cell's options."""

from rpccore_matchmaker_static.hostmap import HostMap
from rpccore_matchmaker_static.matchmaker import StaticMatchMaker

__all__ = ["HostMap", "StaticMatchMaker"]
