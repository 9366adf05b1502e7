"""rpccore matchmaker ``ring``: hosts of each topic from a JSON ring file."""

from rpccore_matchmaker_ring.matchmaker import RingMatchMaker
from rpccore_matchmaker_ring.ringfile import RingFileError, parse_ring

__all__ = ["RingFileError", "RingMatchMaker", "parse_ring"]
