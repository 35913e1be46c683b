"""The pace of a bulk send: requests evenly spaced, and all paused together on a 429."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

#: After a 429, the rate is multiplied by this (multiplicative decrease)...
DECREASE_FACTOR: Final = 0.5
#: ...and then grows back, each second, by this share of the reference rate: the
#: target, or with no target the highest rate measured (additive increase). A fixed
#: step, so that several 429s in a row do not make recovery ever slower.
RECOVERY_STEP: Final = 0.05
#: Never slower than this share of the reference rate...
FLOOR_SHARE: Final = 0.02
#: ...nor than this, in requests per second.
MIN_RATE: Final = 0.5
#: The pause after a 429 that gave no Retry-After, in seconds.
DEFAULT_PAUSE_S: Final = 1.0
_ESTIMATE_WINDOW_S: Final = 0.5


class RateLimitPause:
    """The pause a 429 puts on a whole client: every request waits until it is over.

    One per connection pool, so shared by a client and its `with_options()` copies:
    when the service says "too many requests, retry after N seconds" to a request that
    is going to wait and retry, the others do not go and hear the same thing.
    """

    __slots__ = ("_clock", "until")

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        #: The `clock()` time the pause ends; 0 if there never was one.
        self.until = 0.0

    def extend(self, seconds: float) -> None:
        """Pause until `seconds` from now, unless already paused for longer."""
        self.until = max(self.until, self._clock() + seconds)

    def remaining(self) -> float:
        """Seconds until the pause is over; 0 or less when none is in force."""
        return self.until - self._clock() if self.until else 0.0


class RateLimiter:
    """Spaces the requests of all workers evenly at `rate` per second, without bursts.

    Every attempt takes the next slot, one `1/rate` after the previous one, so the rate
    holds over any window, not just on average. A 429 pauses every worker until its
    `Retry-After` has passed (one pause for all, rather than each worker running into
    the limit on its own), then the limiter slows down (multiplicative decrease) and
    speeds up again gradually (additive increase), so a run settles under the service's
    real limit. With `rate=None` it does not limit until a 429, and then starts from
    half the rate it measured (a 429 before any rate could be measured only pauses).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate is not None and not rate > 0:
            raise ValueError(
                f"rate_limit must be a positive number of messages per second, got {rate!r}"
            )
        self.target = rate
        self.rate = rate
        self.pauses = 0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._recovered_at = 0.0
        self._window_start = clock()
        self._window_count = 0
        self._measured = 0.0
        self._peak = 0.0

    async def acquire(self) -> None:
        """Wait for this attempt's slot."""
        wait = self.take_slot()
        if wait is not None:
            await wait

    def take_slot(self) -> Awaitable[None] | None:
        """Take this attempt's slot: the wait for it to come, or None if it is now.

        (No coroutine is made for an attempt that need not wait: with no limit, that is
        almost every one.)
        """
        now = self._clock()
        self._measure(now)
        rate = self.rate
        if rate is None:
            if self._paused_until <= now:
                return None
            slot = self._paused_until
        else:
            if rate < (self.target or float("inf")) and now - self._recovered_at >= 1:
                rate = self._recover(now)
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + 1 / rate
        return self._sleep(slot - now) if slot > now else None

    def rate_limited(self, retry_after: float | None) -> None:
        """A request was answered 429: pause everyone, then slow down."""
        now = self._clock()
        pause_until = now + (DEFAULT_PAUSE_S if retry_after is None else retry_after)
        if pause_until <= self._paused_until:
            return  # a 429 of requests sent before the pause began: already counted
        self.pauses += 1
        self._paused_until = pause_until
        self._next_slot = max(self._next_slot, pause_until)
        current = self.rate if self.rate is not None else self._measured
        if not current:
            return  # nothing measured yet: the pause is all we can do
        self.rate = max(self._floor(), current * DECREASE_FACTOR)
        self._recovered_at = pause_until

    def _reference(self) -> float:
        return self.target if self.target is not None else max(self._peak, MIN_RATE)

    def _floor(self) -> float:
        return max(MIN_RATE, self._reference() * FLOOR_SHARE)

    def _recover(self, now: float) -> float:
        seconds = int(now - self._recovered_at)
        assert self.rate is not None
        self.rate = self.rate + seconds * self._reference() * RECOVERY_STEP
        if self.target is not None:
            self.rate = min(self.rate, self.target)
        self._recovered_at += seconds
        return self.rate

    def _measure(self, now: float) -> None:
        self._window_count += 1
        elapsed = now - self._window_start
        if elapsed >= _ESTIMATE_WINDOW_S:
            self._measured = self._window_count / elapsed
            self._peak = max(self._peak, self._measured)
            self._window_start, self._window_count = now, 0
