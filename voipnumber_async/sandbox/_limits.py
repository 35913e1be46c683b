"""The sandbox's rate limit per account: past it, a 429 `RATE_LIMITED` with `Retry-After`.

A smooth limiter (GCRA) per account, as a real service's is: `rate_limit` requests a
second, evenly, with a burst of `BURST_S` seconds' worth. A refused request is not
processed and does not count against the rate.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Final

__all__ = ["BURST_S", "RATE_LIMITED_BODY", "AccountLimiter", "check_rate_limit"]

#: How far ahead of its even schedule an account may be: 0.1 s worth of requests.
BURST_S: Final = 0.1
#: The answer's body: the contract's 429 shape, as `Fault.rate_limited()` answers it.
RATE_LIMITED_BODY: Final = json.dumps(
    {"status": "ERROR", "code": "RATE_LIMITED", "description": "Too many requests"}
).encode()


def check_rate_limit(instance: object, attribute: object, value: float | None) -> None:
    """An attrs validator (also used by `SandboxState`): `None` or a positive number."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
    ):
        raise ValueError(f"rate_limit must be a positive number (sends a second), got {value!r}")


class AccountLimiter:
    """One account's limit: `take()` is 0 for a request let through, else `Retry-After` seconds."""

    __slots__ = ("_clock", "_interval", "_tat")

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1 / rate
        self._clock = clock
        self._tat = 0.0  # the theoretical arrival time of the next request

    def take(self) -> int:
        """Let one request through (0), or the whole seconds to wait (>= 1, as `Retry-After`)."""
        now = self._clock()
        tat = max(self._tat, now)
        if tat - now > BURST_S:
            # Whole seconds, at least 1: what a service's Retry-After says.
            return max(1, math.ceil(tat - BURST_S - now))
        self._tat = tat + self._interval
        return 0
