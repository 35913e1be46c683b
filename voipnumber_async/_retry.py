"""When a failed send is tried again, and how long to wait: `RetryPolicy`.

The policy, in the order `RetryPolicy.next_wait` applies it:

1. Only failures where the message was certainly not processed are retried by default:
   connection errors, 429 and 503 (after their `Retry-After`, unless it is longer than
   `max_retry_after`), 502. An outcome-unknown failure is retried only when the caller
   opts in, and then with the same `Idempotency-Key`. Documented error codes are
   answers, never retried.
2. At most `max_retries` retries.
3. The wait is the service's `Retry-After` when it gave one, else exponential backoff
   with full jitter, computed by tenacity's `wait_random_exponential`.
4. No retry whose wait would end past the `deadline`.

The sender's loop asks `next_wait` after each failure; tenacity computes the schedule,
not the loop: its `AsyncRetrying` costs about 37 µs a send here, as much CPU as a
tenth of the HTTP request, for sends that nearly all succeed at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import attrs
from tenacity import RetryCallState, Retrying, wait_random_exponential

from ._config import DEFAULT_MAX_RETRIES, LOGGER_NAME
from ._errors import (
    APIConnectionError,
    APIError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    VoipNumberError,
)

__all__ = ["RetryEvent", "RetryPolicy", "announce_retry"]

logger = logging.getLogger(LOGGER_NAME)


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be >= 0, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be > 0, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryEvent:
    """What `RetryPolicy.on_retry` is told before each wait.

    Attributes:
        attempt: The number of the attempt that just failed (1 for the first).
        error: Why it failed.
        wait: Seconds until the next attempt.
        idempotency_key: The key the next attempt carries, the same as every attempt's.
    """

    attempt: int
    error: VoipNumberError
    wait: float
    idempotency_key: str


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a failed send is retried. Every argument is keyword-only.

    Attributes:
        max_retries: Retries after the first attempt; 0 turns retrying off.
        initial_backoff: The cap of the first wait, in seconds. Waits use "full jitter":
            a random time between 0 and `min(max_backoff, initial_backoff * 2**n)`.
        max_backoff: The largest wait between two attempts, in seconds.
        deadline: No retry starts whose wait would end later than this many seconds
            after the first attempt began; `None` for no deadline.
        max_retry_after: The longest `Retry-After` honoured, in seconds. A 429 or 503
            asking for longer is raised at once, for the caller to schedule.
        retry_outcome_unknown: Also retry failures where the message may have been sent
            (HTTP 500/504, dropped connection, read timeout), with the same
            `Idempotency-Key`. Off by default: the service's idempotency is assumed, not
            documented.
        on_retry: Called with a `RetryEvent` before every wait; also logged at INFO on
            the `voipnumber` logger. An exception it raises is logged, not propagated.
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=_non_negative)
    initial_backoff: float = attrs.field(default=0.5, validator=_positive)
    max_backoff: float = attrs.field(default=8.0, validator=_positive)
    deadline: float | None = attrs.field(default=60.0, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_non_negative)
    retry_outcome_unknown: bool = False
    on_retry: Callable[[RetryEvent], object] | None = attrs.field(default=None, eq=False)

    def should_retry(self, error: BaseException) -> bool:
        """Whether `error` is one this policy retries (attempt counts aside)."""
        if isinstance(error, (RateLimitError, ServiceUnavailableError)):
            return error.retry_after is None or error.retry_after <= self.max_retry_after
        if isinstance(error, APIConnectionError):
            return True
        if isinstance(error, OutcomeUnknownError):
            return self.retry_outcome_unknown
        return False

    def longest_wait_now(self, started: float) -> float:
        """The longest this policy would wait now for a `Retry-After`.

        `max_retry_after`, or less when the deadline is nearer; `started` is the
        monotonic time the first attempt began.
        """
        if self.deadline is None:
            return self.max_retry_after
        return max(0.0, min(self.max_retry_after, self.deadline - (time.monotonic() - started)))

    def next_wait(self, error: BaseException, *, attempt: int, elapsed: float) -> float | None:
        """The wait before retrying after `error` ended attempt number `attempt`, or None.

        None means the policy gives up: `error` is not one it retries, the retries are
        spent, or the wait would end past the deadline. `elapsed` is the time since the
        first attempt began, in seconds.
        """
        if not self.should_retry(error) or attempt > self.max_retries:
            return None
        wait = self.wait_after(error, attempt)
        if self.deadline is not None and elapsed + wait > self.deadline:
            return None
        return wait

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt`, with full jitter.

        A random time between 0 and `min(max_backoff, initial_backoff * 2**(attempt - 1))`.
        """
        schedule = wait_random_exponential(multiplier=self.initial_backoff, max=self.max_backoff)
        return float(schedule(_attempt_number(attempt)))

    def wait_after(self, error: BaseException, attempt: int) -> float:
        """The wait after `error` ended attempt number `attempt`.

        The service's `Retry-After` when it gave one, else the jittered backoff.
        """
        if isinstance(error, APIError) and error.retry_after is not None:
            return error.retry_after
        return self.backoff(attempt)


def _attempt_number(attempt: int) -> RetryCallState:
    """What tenacity's wait strategies read: the state of attempt number `attempt`."""
    state = RetryCallState(_NOT_RUN, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


#: The retrying object a `RetryCallState` names; its own loop is never run.
_NOT_RUN = Retrying()


def announce_retry(
    policy: RetryPolicy, error: VoipNumberError, *, attempt: int, wait: float, key: str
) -> None:
    """Log a retry the policy decided on at INFO, and tell `policy.on_retry`."""
    logger.info(
        "retrying in %.3fs after attempt %d of %d failed: %s: %s (idempotency_key=%s)",
        wait,
        attempt,
        policy.max_retries + 1,
        type(error).__name__,
        error,
        key,
    )
    if policy.on_retry is not None:
        event = RetryEvent(attempt=attempt, error=error, wait=wait, idempotency_key=key)
        try:
            policy.on_retry(event)
        except Exception:
            # An observer must not change what happens to the message.
            logger.exception("RetryPolicy.on_retry raised; retrying regardless")
