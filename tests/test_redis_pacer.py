"""`RedisPacer` against a real redis-server: one rate and one 429 pause for every process.

Rates are measured on the pacers' own schedule (turns never start early), or by what
the sandbox received, with generous bounds: a slow machine makes turns late, never
early, so the upper bounds are the property and the lower ones only catch a stall.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio
from _redis import RedisServer
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ConfigurationError,
    Pacer,
    RateLimitError,
    RetryPolicy,
)
from voipnumber_async.redis import RedisPacer, RedisUnavailableError, pacer_key
from voipnumber_async.sandbox import Sandbox

KEY = pacer_key("demo-account")


async def take(pacer: Pacer, max_wait: float | None = None) -> float:
    """Take a turn; the monotonic time it started."""
    wait = pacer.acquire(max_wait=max_wait)
    if wait is not None:
        await wait
    return time.monotonic()


@pytest.fixture
async def pacers(redis_url: str) -> AsyncIterator[Callable[..., RedisPacer]]:
    """Makes pacers on the test's Redis (default key `KEY`), closed after the test."""
    made: list[RedisPacer] = []

    def make(**options: object) -> RedisPacer:
        options.setdefault("key", KEY)
        pacer = RedisPacer(redis_url, **options)  # type: ignore[arg-type]
        made.append(pacer)
        return pacer

    yield make
    for pacer in made:
        await pacer.aclose()


async def pause_written(url: str) -> None:
    """Until the pause a pacer heard is in Redis: `rate_limited` writes it in the background."""
    connection = redis.asyncio.Redis.from_url(url)
    try:
        # Polling Redis, the only place it shows: no event of the pacer's to wait on.
        while not await connection.exists(f"{KEY}:pause"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    finally:
        await connection.aclose()


async def redis_time(url: str) -> float:
    """Redis's clock, in seconds: the one the shared schedule is kept on."""
    connection = redis.asyncio.Redis.from_url(url)
    try:
        seconds, microseconds = await connection.time()
    finally:
        await connection.aclose()
    return seconds + microseconds / 1_000_000


def test_the_conventional_key_names_the_account() -> None:
    assert pacer_key("acct-1") == "voipnumber:pacer:acct-1"


@pytest.mark.parametrize("rate", [0, -5, float("nan"), float("inf"), True, "10", None])
def test_the_rate_must_be_a_positive_number(rate: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisPacer("redis://127.0.0.1:1/0", rate=rate, key=KEY)  # type: ignore[arg-type]
    assert caught.value.field == "rate"


def test_the_key_must_not_be_empty() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisPacer("redis://127.0.0.1:1/0", rate=10, key="")
    assert caught.value.field == "key"


def test_its_repr_shows_neither_the_url_nor_the_password() -> None:
    pacer = RedisPacer("redis://user:s3cret@redis.internal:6379/0", rate=10, key=KEY)
    assert "s3cret" not in repr(pacer)
    assert "redis.internal" not in repr(pacer)
    assert repr(pacer) == f"RedisPacer(rate=10.0, key={KEY!r}, lease=1)"


async def test_pacers_on_one_key_share_one_rate(
    pacers: Callable[..., RedisPacer],
) -> None:
    rate, total = 200, 400  # two seconds' worth, over three "processes"
    shared = [pacers(rate=rate) for _ in range(3)]
    starts: list[float] = []

    async def run(pacer: RedisPacer) -> None:
        while len(starts) < total:
            starts.append(await take(pacer))

    await asyncio.gather(*(run(pacer) for pacer in shared))

    starts.sort()
    measured = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 0.85 * rate < measured < 1.1 * rate
    assert all(pacer.round_trips < total / 2 for pacer in shared)  # leases, not one a turn


async def test_there_is_no_burst_at_the_start(pacers: Callable[..., RedisPacer]) -> None:
    pacer = pacers(rate=100)
    starts = [await take(pacer) for _ in range(21)]
    # 20 intervals of 10 ms: never sooner (a turn is never early), whatever the machine.
    assert starts[-1] - starts[0] >= 0.95 * 20 / 100


async def test_a_429_heard_by_one_pacer_pauses_another(
    redis_url: str, pacers: Callable[..., RedisPacer]
) -> None:
    heard, other = pacers(rate=50), pacers(rate=50)
    await take(heard)
    before = await redis_time(redis_url)

    heard.rate_limited(2)
    await pause_written(redis_url)
    await take(other)

    # On Redis's clock, the clock of the pause: the other's turn came after it.
    assert await redis_time(redis_url) - before >= 1.95
    assert heard.paused_for() <= 0 and other.paused_for() <= 0


async def test_a_pause_longer_than_the_caller_waits_is_refused_at_once(
    redis_url: str, pacers: Callable[..., RedisPacer]
) -> None:
    heard, other = pacers(rate=50), pacers(rate=50)
    heard.rate_limited(30)
    await pause_written(redis_url)

    with pytest.raises(RateLimitError) as here:  # this process knows: before any turn
        heard.acquire(max_wait=1)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as there:  # another hears it with its lease
        await take(other, max_wait=1)

    assert time.monotonic() - started < 1  # refused, not waited for
    assert here.value.retry_after is not None and here.value.retry_after > 25
    assert there.value.retry_after is not None and there.value.retry_after > 25
    assert other.paused_for() > 25


async def test_without_retry_after_a_429_pauses_nothing(
    redis_url: str, pacers: Callable[..., RedisPacer]
) -> None:
    pacer = pacers(rate=50)
    pacer.rate_limited(None)
    await take(pacer)
    connection = redis.asyncio.Redis.from_url(redis_url)
    assert not await connection.exists(f"{KEY}:pause")
    await connection.aclose()


async def test_keys_do_not_share_a_rate(pacers: Callable[..., RedisPacer]) -> None:
    one = pacers(rate=1, key=pacer_key("a"))
    another = pacers(rate=1, key=pacer_key("b"))
    await take(one)  # the next turn on "a" is a second away
    started = time.monotonic()
    await take(another)
    assert time.monotonic() - started < 0.9


async def test_a_dead_redis_fails_the_turn_and_pacing_resumes_when_it_is_back(
    own_redis_server: RedisServer,
) -> None:
    async with RedisPacer(
        own_redis_server.url, rate=100, key=KEY, lease=1, unavailable_timeout=0.5
    ) as pacer:
        await take(pacer)
        own_redis_server.kill()

        started = time.monotonic()
        with pytest.raises(RedisUnavailableError) as caught:
            await take(pacer)
        assert 0.5 <= time.monotonic() - started < 10  # waited for it, then gave up
        assert "nothing was sent" in str(caught.value)
        assert own_redis_server.url not in str(caught.value)

        own_redis_server.start()  # its script cache is empty: the script is loaded again
        starts = [await take(pacer) for _ in range(11)]
        assert starts[-1] - starts[0] >= 0.95 * 10 / 100  # paced, as before


async def test_a_redis_that_lost_its_keys_paces_afresh(own_redis_server: RedisServer) -> None:
    async with RedisPacer(own_redis_server.url, rate=100, key=KEY, lease=1) as pacer:
        await take(pacer)
        own_redis_server.flush()
        starts = [await take(pacer) for _ in range(11)]
    assert starts[-1] - starts[0] >= 0.95 * 10 / 100


async def test_a_pause_heard_while_redis_is_down_is_shared_when_it_is_back(
    own_redis_server: RedisServer,
) -> None:
    url = own_redis_server.url
    heard = RedisPacer(url, rate=50, key=KEY, unavailable_timeout=0.3)
    other = RedisPacer(url, rate=50, key=KEY)
    try:
        own_redis_server.kill()
        heard.rate_limited(20)
        await asyncio.sleep(0.5)  # its background write gave up
        own_redis_server.start()
        with pytest.raises(RateLimitError):  # its pause, still in force here...
            heard.acquire(max_wait=1)
        await pause_written(url)  # ...which that turn wrote to Redis, now back
        with pytest.raises(RateLimitError):
            await take(other, max_wait=1)
    finally:
        await heard.aclose()
        await other.aclose()


async def test_it_can_be_used_again_after_aclose(pacers: Callable[..., RedisPacer]) -> None:
    pacer = pacers(rate=100)
    await take(pacer)
    await pacer.aclose()
    await take(pacer)  # it reconnects


async def test_clients_sharing_a_pacer_below_the_limit_meet_no_429(
    pacers: Callable[..., RedisPacer],
) -> None:
    limit, rate, count = 50, 40, 60
    async with Sandbox(rate_limit=limit) as sandbox:
        settings = sandbox.client_settings()
        no_retries = RetryPolicy(max_retries=0)
        async with (
            AsyncVoipNumber(**settings, pacer=pacers(rate=rate), retry=no_retries) as one,
            AsyncVoipNumber(**settings, pacer=pacers(rate=rate), retry=no_retries) as two,
        ):
            await asyncio.gather(
                *((one if i % 2 else two).sms.send(FROM, TO, f"message {i}") for i in range(count))
            )

    assert sandbox.accepted_count == count
    assert sandbox.status_counts[429] == 0
    # What the server received: never more in a second than the rate (and a turn).
    received = sorted(request.received_at for request in sandbox.requests)
    busiest = max(sum(1 for t in received if start <= t < start + 1) for start in received)
    assert busiest <= math.ceil(rate * 1.1) + 1


async def test_turns_leased_before_an_idle_spell_are_not_spent_as_a_burst(
    pacers: Callable[..., RedisPacer],
) -> None:
    pacer = pacers(rate=100, lease=10)
    await take(pacer)  # nine more turns of this lease, 10 ms apart, left unused
    await asyncio.sleep(0.3)
    starts = [await take(pacer) for _ in range(6)]
    assert starts[-1] - starts[0] >= 0.95 * 5 / 100  # evenly spaced, not all at once


async def test_it_can_be_used_again_from_another_event_loop(redis_url: str) -> None:
    pacer = RedisPacer(redis_url, rate=1000, key=KEY)

    async def burst() -> None:
        await asyncio.gather(*(take(pacer) for _ in range(30)))  # contends for a lease
        await pacer.aclose()

    await burst()
    await asyncio.to_thread(asyncio.run, burst())
