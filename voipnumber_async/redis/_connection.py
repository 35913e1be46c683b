"""How the Redis pieces reach Redis: one asyncio client, and Redis's failures as ours.

The only module of the Redis integration that turns a URL into a client; the pacer and
the journal take either a URL (their own client, closed by their `aclose()`) or the
caller's `redis.asyncio.Redis` (used, never closed).
"""

from __future__ import annotations

from typing import Final

import redis.asyncio
import redis.exceptions

from .._errors import ConfigurationError, RedisUnavailableError

__all__ = ["REDIS_DOWN", "RedisLike", "open_redis", "unavailable"]

RedisLike = str | redis.asyncio.Redis
"""A Redis to use: a URL (`redis://host:6379/0`) or a `redis.asyncio.Redis` of yours."""

#: What Redis being down or restarting raises: refused or dropped connections,
#: timeouts, and `BusyLoadingError` (a ConnectionError) while it loads its data.
REDIS_DOWN: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)

#: Seconds a command may take before Redis counts as unreachable.
SOCKET_TIMEOUT_S: Final = 5.0


def open_redis(where: str | redis.asyncio.Redis) -> tuple[redis.asyncio.Redis, bool]:
    """A client for `where` and whether it is ours to close (made from a URL).

    Raises:
        ConfigurationError: `where` is neither a `redis://`, `rediss://` or `unix://`
            URL nor a `redis.asyncio.Redis`.
    """
    if isinstance(where, redis.asyncio.Redis):
        return where, False
    if not isinstance(where, str) or not where.startswith(("redis://", "rediss://", "unix://")):
        # Not the value itself: a URL may hold a password.
        raise ConfigurationError(
            f"expected a redis:// URL or a redis.asyncio.Redis, got a {type(where).__name__}",
            field="redis",
        )
    client = redis.asyncio.Redis.from_url(
        where,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )
    return client, True


def unavailable(what: str, error: BaseException) -> RedisUnavailableError:
    """Our error for Redis failing `what` (e.g. "take a turn"), without its URL or password.

    redis-py's messages name the host and port, never the password; the error's class
    is kept, its text only as far as the first line.
    """
    detail = str(error).splitlines()[0] if str(error) else ""
    return RedisUnavailableError(
        f"Redis did not answer ({type(error).__name__}: {detail}) while trying to {what}; "
        "nothing was sent. Check that Redis is running and reachable; the run can be "
        "resumed once it is."
    )
