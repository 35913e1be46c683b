"""The tests' own redis-server: really started, emptied per test, and restartable."""

from __future__ import annotations

import redis
from _redis import RedisServer


def test_each_test_gets_an_empty_database(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    assert connection.dbsize() == 0
    connection.set("left-by-this-test", 1)
    connection.close()


def test_a_durable_server_keeps_its_writes_through_a_crash(own_redis_server: RedisServer) -> None:
    connection = redis.Redis.from_url(own_redis_server.url)
    connection.set("campaign", "kept")
    connection.close()
    own_redis_server.restart()
    connection = redis.Redis.from_url(own_redis_server.url)
    assert connection.get("campaign") == b"kept"
    connection.close()
