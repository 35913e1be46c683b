"""`RedisPacer`: one rate and one 429 pause, shared through Redis by every process on a key.

The schedule lives in Redis, on Redis's own clock, so the machines' clocks never meet:

- **The rate** is a GCRA (a leaky bucket kept as one number): the key holds the
  *theoretical arrival time* (TAT) of the next free turn, in Redis microseconds. A lease
  of `n` turns starts at `max(now, TAT, pause)` and moves the TAT `n / rate` on, in one
  atomic script, so turns stay `1 / rate` apart across all processes, with no burst
  (the tolerance is zero). Redis answers with offsets from its `now`; the process waits
  them out on its own monotonic clock.
- **The pause** is a second key, `{key}:pause`, holding the Redis time a 429's
  `Retry-After` ends. The same script sets it (only ever later) and every lease starts
  after it, so a 429 answered to any process pauses them all.

A lease takes a few turns at once (by default 20 ms worth), so that Redis hears from a
process `rate / lease` times a second, not `rate` times. Leased turns are handed out at
their scheduled times, never early; those a process does not use are lost, which only
ever keeps the rate below its target.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable
from types import TracebackType
from typing import Final

from redis.asyncio import Redis

from .._errors import ConfigurationError, RateLimitError, RedisUnavailableError
from ._connection import REDIS_DOWN, RedisLike, open_redis, unavailable

__all__ = ["DEFAULT_UNAVAILABLE_TIMEOUT_S", "LEASE_S", "RedisPacer", "pacer_key"]

#: How long a turn waits for an unreachable Redis before `RedisUnavailableError`.
DEFAULT_UNAVAILABLE_TIMEOUT_S: Final = 30.0
#: A lease holds this many seconds' worth of turns by default (at least one turn).
LEASE_S: Final = 0.02
#: Waiting for Redis: the first pause between attempts, doubled up to the last.
_BACKOFF_FIRST_S: Final = 0.1
_BACKOFF_MAX_S: Final = 2.0
#: The least time one attempt is given, even past the deadline: a Redis that is up
#: answers in well under a millisecond.
_ATTEMPT_MIN_S: Final = 0.05
#: A leased turn not handed out this long after its time is dropped: a process back
#: from idling must not spend its old turns at once, as a burst.
_STALE_S: Final = 0.05

# KEYS: the TAT key, the pause key. ARGV: microseconds between turns, turns to take (0:
# none), microseconds to pause for (0: no pause to set). Returns, in microseconds from
# Redis's now: the start of the first turn taken, and the end of the pause (<= 0: none).
# Times are formatted with %.0f: Lua's tostring would round a microsecond epoch to 14
# digits. Keys expire once in the past, so an idle key costs nothing and a restarted
# Redis that lost them simply starts afresh.
_SCRIPT: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local turns = tonumber(ARGV[2])
local pause_for = tonumber(ARGV[3])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause_for > 0 and now + pause_for > pause then
  pause = now + pause_for
  redis.call('SET', KEYS[2], string.format('%.0f', pause), 'PX', math.ceil(pause_for / 1000) + 1)
end
if turns == 0 then
  return {0, pause - now}
end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(now, tat, pause)
local next_tat = start + turns * interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {start - now, pause - now}
"""


def pacer_key(account_id: str) -> str:
    """The conventional key of an account's shared pacer: `voipnumber:pacer:{account_id}`.

    Every process sending for the account with a `RedisPacer` on this key shares its rate
    and its 429 pauses.
    """
    return f"voipnumber:pacer:{account_id}"


class RedisPacer:
    """A `Pacer` shared through Redis: one even rate and one 429 pause for every process.

    ```py
    pacer = RedisPacer("redis://localhost:6379/0", rate=50, key=pacer_key("my-account"))
    async with pacer, AsyncVoipNumber(pacer=pacer) as client:
        ...  # with every other process on the key: 50 requests a second, at most
    ```

    Turns are evenly spaced at `1 / rate` across all the processes (no burst), on
    Redis's clock, so the machines' clocks may disagree. A 429 answered to any of them
    (`rate_limited`) pauses all of them for its `Retry-After`. Nothing is ever sent
    unpaced: while Redis is unreachable a turn waits for it (retrying at 0.1 s, doubling
    up to 2 s) and raises `RedisUnavailableError` after `unavailable_timeout`; once
    Redis is back, pacing resumes, even if it lost its keys.

    Usable after `aclose()`: it reconnects when next asked for a turn, on the event
    loop then running. Between `aclose()`s, use it from one event loop: its connection
    and its lock belong to the loop they were first used on (a worker that runs each
    task in an `asyncio.run` of its own closes the pacer at the end of each).

    Args:
        redis: A `redis://` URL (the pacer's own connection, closed by `aclose()`) or
            your `redis.asyncio.Redis` (used, never closed).
        rate: Requests per second at most, for all processes on `key` together.
        key: The Redis key of the shared schedule; `pacer_key(account_id)` gives the
            conventional one. The pause is kept beside it, at `{key}:pause`.
        unavailable_timeout: Seconds a turn waits for an unreachable Redis.
        lease: Turns taken from Redis at once; by default 20 ms worth
            (`max(1, round(rate * 0.02))`). Larger: fewer round trips, more turns lost
            by a process that stops asking.

    Raises:
        ConfigurationError: `rate` is not a positive number, `key` is empty, `lease`
            is not a positive int, `unavailable_timeout` is negative, or `redis` is
            neither a Redis URL nor a `redis.asyncio.Redis`.
    """

    def __init__(
        self,
        redis: RedisLike,
        *,
        rate: float,
        key: str,
        unavailable_timeout: float = DEFAULT_UNAVAILABLE_TIMEOUT_S,
        lease: int | None = None,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise ConfigurationError(
                f"rate must be a positive number of requests per second, got {rate!r}",
                field="rate",
            )
        if rate == float("inf"):
            raise ConfigurationError("rate must be finite", field="rate")
        if not isinstance(key, str) or not key:
            raise ConfigurationError("key must be a non-empty str", field="key")
        if lease is not None and (
            isinstance(lease, bool) or not isinstance(lease, int) or lease < 1
        ):
            raise ConfigurationError(f"lease must be an int >= 1, got {lease!r}", field="lease")
        if not unavailable_timeout >= 0:
            raise ConfigurationError(
                f"unavailable_timeout must be >= 0 seconds, got {unavailable_timeout!r}",
                field="unavailable_timeout",
            )
        #: Requests per second, for every process on `key` together.
        self.rate = float(rate)
        #: The Redis key of the shared schedule.
        self.key = key
        #: Turns taken from Redis at once.
        self.lease = lease if lease is not None else max(1, round(rate * LEASE_S))
        #: Seconds a turn waits for an unreachable Redis.
        self.unavailable_timeout = float(unavailable_timeout)
        #: Leases taken from Redis: its round trips for turns.
        self.round_trips = 0
        self._where = redis
        # Opened now, so that a bad URL fails here, not at the first send.
        self._redis: Redis | None
        self._redis, self._owned = open_redis(redis)
        self._script = self._redis.register_script(_SCRIPT)
        self._interval_us = max(1, round(1_000_000 / self.rate))
        # Leased turns not yet handed out: their start times on `time.monotonic()`.
        self._turns: collections.deque[float] = collections.deque()
        self._leasing = asyncio.Lock()
        # The end of the pause, as far as this process knows, on `time.monotonic()`.
        self._paused_until = 0.0
        # A pause heard here and not yet written to Redis (its end, monotonic); 0: none.
        self._unwritten_pause = 0.0
        self._writing: set[asyncio.Task[None]] = set()
        # Why the last attempt to reach Redis failed; None once it answered.
        self._last_error: BaseException | None = None

    # --- the Pacer protocol ------------------------------------------------------------

    def paused_for(self) -> float:
        """Seconds until the shared 429 pause ends, as this process last heard; <= 0: none."""
        return self._paused_until - time.monotonic() if self._paused_until else 0.0

    def acquire(self, *, max_wait: float | None = None) -> Awaitable[None] | None:
        """Take a turn; see `Pacer.acquire`. `None` when a leased turn is due now.

        Raises:
            RateLimitError: The pause lasts longer than `max_wait`; no turn was taken.
            RedisUnavailableError: (from the awaitable) Redis did not answer for
                `unavailable_timeout` seconds; no turn was taken, nothing was sent.
        """
        now = time.monotonic()
        if self._unwritten_pause:
            if self._unwritten_pause > now:
                # Redis was down when the 429 came: the other processes must hear of it.
                self._start_writing_pause()
            else:
                self._unwritten_pause = 0.0  # over before Redis heard of it
        self._refuse_if_paused_beyond(now, max_wait)
        self._drop_stale_turns(now)
        if self._turns and not self._unwritten_pause and self._paused_until <= now:
            start = self._turns.popleft()
            if start <= now:
                return None
            return self._wait_for_turn(start, max_wait)
        return self._take(max_wait)

    def rate_limited(self, retry_after: float | None) -> None:
        """A request was answered 429: pause every process on the key for `retry_after`.

        The pause is written to Redis at once in the background (only ever lengthening
        the pause there); if Redis is down, again at the next `acquire`. Without
        a `Retry-After` nothing is shared: the shared rate goes on.
        """
        if not retry_after or retry_after <= 0:
            return
        until = time.monotonic() + retry_after
        self._paused_until = max(self._paused_until, until)
        # Turns leased before the pause would fire into it.
        self._turns.clear()
        self._unwritten_pause = max(self._unwritten_pause, until)
        self._start_writing_pause()

    def _start_writing_pause(self) -> None:
        """Write the pause heard here to Redis, in the background, once at a time."""
        if self._writing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sync caller): the next acquire writes it
            return
        task = loop.create_task(self._write_pause())
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    # --- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the pacer's own Redis connection (not yours); the pacer stays usable."""
        for task in list(self._writing):
            task.cancel()
        self._turns.clear()
        # A lock is bound to the loop it was first contended on: the pacer may be used
        # again from another (a new `asyncio.run`).
        self._leasing = asyncio.Lock()
        client, self._redis = self._redis, None
        if client is not None and self._owned:
            await client.aclose()

    async def __aenter__(self) -> RedisPacer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        # Never the URL: it may hold a password.
        return f"RedisPacer(rate={self.rate!r}, key={self.key!r}, lease={self.lease})"

    # --- inside ----------------------------------------------------------------------------

    def _refuse_if_paused_beyond(self, now: float, max_wait: float | None) -> None:
        remaining = self._paused_until - now
        if max_wait is not None and remaining > max_wait:
            raise RateLimitError(
                f"sending is paused for another {remaining:.1f}s after the service answered "
                "429 (Retry-After) to another request, of this or another process sharing "
                "the pacer, longer than this call's RetryPolicy waits (max_retry_after, or "
                "what is left of its deadline); nothing was sent. Try again later",
                retry_after=remaining,
                http_status=429,
            )

    def _drop_stale_turns(self, now: float) -> None:
        turns = self._turns
        while turns and turns[0] < now - _STALE_S:
            turns.popleft()

    async def _wait_for_turn(self, start: float, max_wait: float | None) -> None:
        await asyncio.sleep(start - time.monotonic())
        if self._paused_until > time.monotonic():
            # A 429 was heard while this turn waited: the turn is lost, take one after.
            await self._take(max_wait)

    async def _take(self, max_wait: float | None) -> None:
        # Each turn waits for Redis from when it was asked for, however many wait ahead.
        deadline = time.monotonic() + self.unavailable_timeout
        while True:
            now = time.monotonic()
            self._refuse_if_paused_beyond(now, max_wait)
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            self._drop_stale_turns(now)
            if self._turns and not self._unwritten_pause:
                start = self._turns.popleft()
                if start > now:
                    await asyncio.sleep(start - now)
                    if self._paused_until > time.monotonic():
                        continue  # the turn fell into a pause heard meanwhile
                return
            async with self._leasing:
                # Another task may have leased while this one waited for the lock.
                if not self._turns or self._unwritten_pause:
                    await self._lease(self.lease, deadline)

    async def _lease(self, turns: int, deadline: float) -> None:
        """Take `turns` turns (0: only write the pending pause) from Redis, waiting for it.

        Waits for an unreachable Redis until `deadline` (monotonic), then raises
        `RedisUnavailableError`; at once if the lease before this one failed too and
        the deadline has passed, so that a queue of turns fails together, not in turn.
        """
        backoff = _BACKOFF_FIRST_S
        while True:
            if self._last_error is not None and time.monotonic() >= deadline:
                raise unavailable("take a turn", self._last_error) from self._last_error
            pause_until = self._unwritten_pause
            pause_for_us = max(0, round((pause_until - time.monotonic()) * 1_000_000))
            try:
                # Bounded by what is left of the wait: redis-py's own retries back off
                # for seconds, and a dead Redis must fail by `unavailable_timeout`.
                start_us, pause_us = await asyncio.wait_for(
                    self._run(turns, pause_for_us),
                    max(_ATTEMPT_MIN_S, deadline - time.monotonic()),
                )
                self._last_error = None
                break
            except (*REDIS_DOWN, asyncio.TimeoutError) as error:
                self._last_error = error
                left = deadline - time.monotonic()
                if left <= 0:
                    raise unavailable("take a turn", error) from error
                await asyncio.sleep(min(backoff, left))
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        answered = time.monotonic()
        if self._unwritten_pause == pause_until:
            self._unwritten_pause = 0.0
        if pause_us > 0:
            self._paused_until = max(self._paused_until, answered + pause_us / 1_000_000)
        if turns:
            self.round_trips += 1
            first = answered + start_us / 1_000_000
            interval = self._interval_us / 1_000_000
            self._turns.extend(first + i * interval for i in range(turns))

    async def _run(self, turns: int, pause_for_us: int) -> tuple[int, int]:
        if self._redis is None:
            self._redis, self._owned = open_redis(self._where)
            self._script = self._redis.register_script(_SCRIPT)
        start_us, pause_us = await self._script(
            keys=[self.key, f"{self.key}:pause"], args=[self._interval_us, turns, pause_for_us]
        )
        return int(start_us), int(pause_us)

    async def _write_pause(self) -> None:
        try:
            async with self._leasing:
                if self._unwritten_pause:
                    await self._lease(0, time.monotonic() + self.unavailable_timeout)
        except RedisUnavailableError:
            pass  # still unwritten: the next lease writes it
