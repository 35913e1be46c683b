"""The pace of sending: the `Pacer` protocol, and `LocalPacer`, the one in this process.

Every attempt of every send asks its client's pacer for a turn before it is made, and
tells it when the service answered 429. One pacer holds both rules:

- **The pause.** A 429 whose `Retry-After` a request waits out pauses every request of
  the pacer until then: the others would only hear the same answer. A caller whose
  `RetryPolicy` would not wait that long is refused at once, unsent.
- **The rate.** With a rate, turns are evenly spaced at `1/rate` (no bursts). Each
  second the rate becomes the rate the service accepted in it (`rate * (1 - share
  refused)`) plus a fixed step, never above the target. Without a rate, nothing is
  limited until a 429, and then the same rule applies to the rate measured. The cut is
  proportionate: 2% of 429s leave a run at its pace, where halving on every 429 would
  stall it; over a real limit the rate settles just above it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, runtime_checkable

from ._errors import ConfigurationError, RateLimitError

__all__ = ["LocalPacer", "Pacer"]

#: Each second the rate grows by this share of the reference rate (the target, or with
#: no target the highest rate measured). A fixed step, so that a long run of 429s does
#: not make the recovery ever slower.
RECOVERY_STEP: Final = 0.05
#: Never slower than this share of the reference rate...
FLOOR_SHARE: Final = 0.02
#: ...nor than this, in requests per second.
MIN_RATE: Final = 0.5
#: The window over which the rate is measured and the share of 429s counted, in seconds.
WINDOW_S: Final = 1.0


@runtime_checkable
class Pacer(Protocol):
    """Decides when each request may start, for one process or (in Redis, say) many.

    A client asks its pacer before every attempt (`AsyncVoipNumber(pacer=...)`, by
    default a `LocalPacer` without a rate); `send_many(rate_limit=...)` adds a run's own.
    """

    def acquire(self, *, max_wait: float | None = None) -> Awaitable[None] | None:
        """Take a turn for one request: `None` if it may start now, else what to await first.

        Args:
            max_wait: The longest the caller waits for a pause the service asked for
                (a 429's `Retry-After`); `None` for as long as it takes. The pacer's
                own spacing of requests is always waited for.

        Raises:
            RateLimitError: A pause lasts longer than `max_wait`; no turn was taken.
        """
        ...

    def rate_limited(self, retry_after: float | None) -> None:
        """Told that the service answered 429, asking to wait `retry_after` seconds (if it said)."""
        ...


class LocalPacer:
    """The pacer of one process: an even rate if given, one 429 pause, a proportionate slow-down.

    ```py
    pacer = LocalPacer(rate=50)                # 50 requests a second, at most
    client = AsyncVoipNumber(pacer=pacer)      # every send of this client (and its copies)
    ```

    Share one `LocalPacer` between clients of the same event loop to pace them together.

    Args:
        rate: Requests per second at most, evenly spaced; `None` for no limit but the
            service's 429s.
        clock: Monotonic seconds (tests pass a fake).
        sleep: How to wait (tests pass a fake).

    Raises:
        ConfigurationError: `rate` is not a positive number.
    """

    def __init__(
        self,
        rate: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0
        ):
            raise ConfigurationError(
                f"rate_limit must be a positive number of messages per second, got {rate!r}",
                field="rate_limit",
            )
        #: The rate asked for; `None` for none.
        self.target: float | None = None if rate is None else float(rate)
        #: The rate in force now (below the target after 429s); `None` for no limit.
        self.rate: float | None = self.target
        #: How many times a 429 paused every request.
        self.pauses = 0
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        #: The `clock()` time the 429 pause ends; 0 if there never was one.
        self.paused_until = 0.0
        self._window_start = clock()
        self._window_attempts = 0
        self._window_refused = 0
        self._peak = 0.0

    def paused_for(self) -> float:
        """Seconds until the 429 pause is over; 0 or less when none is in force."""
        return self.paused_until - self._clock() if self.paused_until else 0.0

    def acquire(self, *, max_wait: float | None = None) -> Awaitable[None] | None:
        """Take a turn; see `Pacer.acquire`. Makes no coroutine for a turn that is now."""
        now = self._clock()
        self._window_attempts += 1
        if now - self._window_start >= WINDOW_S:
            self._close_window(now)
        self._refuse_if_paused_beyond(now, max_wait)
        rate = self.rate
        if rate is None:
            start = self.paused_until
        else:
            start = max(now, self._next_slot, self.paused_until)
            self._next_slot = start + 1 / rate
        return self._wait(start, max_wait) if start > now else None

    async def _wait(self, start: float, max_wait: float | None) -> None:
        await self._sleep(start - self._clock())
        # A 429 heard while this turn waited may have paused everyone beyond it.
        while (remaining := self.paused_for()) > 0:
            self._refuse_if_paused_beyond(self._clock(), max_wait)
            await self._sleep(remaining)

    def _refuse_if_paused_beyond(self, now: float, max_wait: float | None) -> None:
        remaining = self.paused_until - now
        if max_wait is not None and remaining > max_wait:
            raise RateLimitError(
                f"sending is paused for another {remaining:.1f}s after the service answered "
                "429 (Retry-After) to another request, longer than this call's RetryPolicy "
                "waits (max_retry_after, or what is left of its deadline); nothing was sent. "
                "Try again later",
                retry_after=remaining,
                http_status=429,
            )

    def rate_limited(self, retry_after: float | None) -> None:
        """A request was answered 429: pause everyone for `retry_after`, count the refusal."""
        self._window_refused += 1
        if not retry_after:
            return
        now = self._clock()
        until = now + retry_after
        if until > self.paused_until:
            # The 429s of requests sent before a pause began only extend it.
            if self.paused_until <= now:
                self.pauses += 1
            self.paused_until = until
            self._next_slot = max(self._next_slot, until)

    def _close_window(self, now: float) -> None:
        elapsed = now - self._window_start
        measured = self._window_attempts / elapsed
        self._peak = max(self._peak, measured)
        if self._window_refused or self.rate is not None:
            # The rate the service accepted over the window, and a step up: after
            # sporadic 429s the pace holds; over a real limit it settles just above it.
            base = self.rate if self.rate is not None else measured
            share = min(1.0, self._window_refused / self._window_attempts)
            rate = base * (1 - share) + self._reference() * RECOVERY_STEP * elapsed
            if self.target is not None:
                rate = min(rate, self.target)
            self.rate = max(self._floor(), rate)
        self._window_start, self._window_attempts, self._window_refused = now, 0, 0

    def _reference(self) -> float:
        return self.target if self.target is not None else max(self._peak, MIN_RATE)

    def _floor(self) -> float:
        return max(MIN_RATE, self._reference() * FLOOR_SHARE)

    def __repr__(self) -> str:
        return f"LocalPacer(rate={self.rate!r}, target={self.target!r}, pauses={self.pauses})"


class ChainedPacer:
    """Two pacers in turn: a run's own rate (`inner`) under its client's pacer (`outer`).

    Both hear every 429: the client's pause reaches every request of the client, and
    the run slows down too.
    """

    __slots__ = ("inner", "outer")

    def __init__(self, outer: Pacer, inner: Pacer) -> None:
        self.outer = outer
        self.inner = inner

    def acquire(self, *, max_wait: float | None = None) -> Awaitable[None] | None:
        """The outer pacer's turn, then the inner's."""
        first = self.outer.acquire(max_wait=max_wait)
        if first is None:
            return self.inner.acquire(max_wait=max_wait)
        return self._in_turn(first, max_wait)

    async def _in_turn(self, first: Awaitable[None], max_wait: float | None) -> None:
        await first
        if (second := self.inner.acquire(max_wait=max_wait)) is not None:
            await second

    def rate_limited(self, retry_after: float | None) -> None:
        """Tell both."""
        self.outer.rate_limited(retry_after)
        self.inner.rate_limited(retry_after)
