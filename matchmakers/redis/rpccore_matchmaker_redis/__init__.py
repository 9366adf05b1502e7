"""rpccore matchmaker ``redis``: expiring host registrations in Redis."""

from rpccore_matchmaker_redis.matchmaker import RedisMatchMaker
from rpccore_matchmaker_redis.options import masked_url
from rpccore_matchmaker_redis.registry import topic_key

__all__ = ["RedisMatchMaker", "masked_url", "topic_key"]
