"""The tests' redis-server: the SDK's own local server (see `voipnumber_async.redis._local`)."""

from voipnumber_async.redis._local import RedisServer, free_port, redis_server_binary

__all__ = ["RedisServer", "free_port", "redis_server_binary"]
