"""When a failed send is tried again, and how long to wait: `RetryPolicy`, run by tenacity.

Only failures where the message was certainly not processed are retried by default:
connection errors, 429 (after its `Retry-After`), 502 and 503. An outcome-unknown
failure is retried only when the caller opts in, and then with the same
`Idempotency-Key`. Documented error codes are answers, never retried.

The first attempt runs without tenacity: building its retry loop costs about as much
CPU as the HTTP request itself on a small machine, and most sends succeed at once.
After a retryable first failure, tenacity takes over with that failure as its first
attempt, so attempt numbers, waits and the deadline are all counted as one loop.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import attrs
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ._config import DEFAULT_MAX_RETRIES, LOGGER_NAME
from ._errors import (
    APIConnectionError,
    APIError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    VoipNumberError,
)

__all__ = ["RetryEvent", "RetryPolicy"]

T = TypeVar("T")
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

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt`, with full jitter."""
        cap = min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1))
        return random.uniform(0, cap)

    def wait_after(self, error: BaseException, attempt: int) -> float:
        """The wait after `error` ended attempt number `attempt`.

        The service's `Retry-After` when it gave one, else the jittered backoff.
        """
        if isinstance(error, APIError) and error.retry_after is not None:
            return error.retry_after
        return self.backoff(attempt)


class _Wait(wait_base):
    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return self._policy.wait_after(error, retry_state.attempt_number) if error else 0.0


class _StopAtDeadline(stop_base):
    """Stop when the next wait would end past the deadline, counted from the first attempt."""

    def __init__(self, deadline: float | None, started: float) -> None:
        self._deadline = deadline
        self._started = started

    def __call__(self, retry_state: RetryCallState) -> bool:
        if self._deadline is None:
            return False
        elapsed = time.monotonic() - self._started
        return elapsed + retry_state.upcoming_sleep > self._deadline


async def retry_after_failure(
    attempt: Callable[[], Awaitable[T]],
    first_error: VoipNumberError,
    policy: RetryPolicy,
    *,
    started: float,
    idempotency_key: str,
    attempts_made: Callable[[], int],
    before_retry: Callable[[VoipNumberError, float], None] | None = None,
) -> T:
    """Retry `attempt` under `policy`, `first_error` having ended the first attempt.

    Returns the first success, or raises the last error. `started` is the monotonic
    time the first attempt began; `attempts_made` counts the requests made so far, for
    the log lines. `before_retry(error, wait)` is told of each retry the policy decided
    on, before its wait.
    """
    replay: list[VoipNumberError] = [first_error]

    async def next_attempt() -> T:
        if replay:
            raise replay.pop()
        return await attempt()

    def before_sleep(retry_state: RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        assert isinstance(error, VoipNumberError)
        wait = retry_state.upcoming_sleep
        if before_retry is not None:
            before_retry(error, wait)
        logger.info(
            "retrying in %.3fs after attempt %d of %d failed: %s: %s (idempotency_key=%s)",
            wait,
            attempts_made(),
            policy.max_retries + 1,
            type(error).__name__,
            error,
            idempotency_key,
        )
        if policy.on_retry is not None:
            event = RetryEvent(
                attempt=attempts_made(), error=error, wait=wait, idempotency_key=idempotency_key
            )
            try:
                policy.on_retry(event)
            except Exception:
                # An observer must not change what happens to the message.
                logger.exception("RetryPolicy.on_retry raised; retrying regardless")

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_retries + 1) | _StopAtDeadline(policy.deadline, started),
        wait=_Wait(policy),
        retry=retry_if_exception(policy.should_retry),
        before_sleep=before_sleep,
        reraise=True,
    )
    return await retrying(next_attempt)
