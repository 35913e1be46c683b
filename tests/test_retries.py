"""What is retried, how often, how long it waits, and that nothing is sent twice."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from _support import FAST_RETRIES, FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ClientClosedError,
    LocalPacer,
    OutcomeUnknownError,
    RateLimitError,
    RetryEvent,
    RetryPolicy,
    SentMessage,
    ServiceUnavailableError,
)
from voipnumber_async.sandbox import Fault, Sandbox


def keys(sandbox: Sandbox) -> set[str | None]:
    return {request.idempotency_key for request in sandbox.requests}


async def test_two_503s_then_success_sends_one_message_in_three_attempts_with_one_key(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.unavailable(times=2))

    message = await client.sms.send(FROM, TO, "persist")

    assert len(sandbox.messages) == 1
    assert message.id == sandbox.messages[0].id
    assert len(sandbox.requests) == 3
    assert [r.status for r in sandbox.requests] == [503, 503, 200]
    assert len(keys(sandbox)) == 1


async def test_a_502_is_retried_like_a_503(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    sandbox.inject(Fault.unavailable(502))

    await client.sms.send(FROM, TO, "x")

    assert [r.status for r in sandbox.requests] == [502, 200]


async def test_retries_stop_after_max_retries(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.unavailable(times=None))
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=FAST_RETRIES, max_retries=4) as c:
        with pytest.raises(ServiceUnavailableError) as caught:
            await c.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 5
    assert len(sandbox.requests) == 5


async def test_max_retries_zero_makes_one_attempt(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.unavailable())
    async with AsyncVoipNumber(**sandbox.client_settings(), max_retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 1
    assert len(sandbox.requests) == 1


async def test_a_429_waits_at_least_its_retry_after_then_succeeds(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=1))

    started = time.monotonic()
    await client.sms.send(FROM, TO, "x")
    waited = time.monotonic() - started

    assert waited >= 1.0
    assert [r.status for r in sandbox.requests] == [429, 200]
    assert len(sandbox.messages) == 1


async def test_a_429_retry_after_as_an_http_date_is_honoured(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    # HTTP dates have whole seconds: 2s ahead is at least 1s ahead.
    when = datetime.now(timezone.utc) + timedelta(seconds=2)
    sandbox.inject(Fault.rate_limited(retry_after=format_datetime(when, usegmt=True)))

    started = time.monotonic()
    await client.sms.send(FROM, TO, "x")

    assert time.monotonic() - started >= 1.0
    assert len(sandbox.messages) == 1


async def test_a_retry_after_beyond_the_cap_is_raised_at_once(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=120))
    waits: list[RetryEvent] = []
    policy = RetryPolicy(max_retry_after=30, on_retry=waits.append)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.sms.send(FROM, TO, "x")

    assert waits == []  # no wait at all, not a shorter one
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert caught.value.may_have_been_sent is False


async def test_no_retry_starts_whose_wait_would_end_past_the_deadline(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=2, times=None))
    waits: list[RetryEvent] = []
    policy = RetryPolicy(deadline=1.0, max_retries=5, on_retry=waits.append)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.sms.send(FROM, TO, "x")

    assert waits == []
    assert caught.value.attempts == 1


async def test_a_500_after_processing_is_outcome_unknown_with_one_message_and_no_retry(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.server_error(500))

    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sms.send(FROM, TO, "x")

    error = caught.value
    assert error.may_have_been_sent is True
    assert error.http_status == 500
    assert error.attempts == 1
    assert len(sandbox.requests) == 1
    assert len(sandbox.messages) == 1
    assert error.idempotency_key == sandbox.messages[0].idempotency_key


async def test_a_504_is_outcome_unknown(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    sandbox.inject(Fault.server_error(504, after_processing=False))

    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sms.send(FROM, TO, "x")

    assert caught.value.http_status == 504
    assert len(sandbox.requests) == 1


async def test_opting_in_retries_an_unknown_outcome_with_the_same_key_and_sends_once(
    sandbox: Sandbox,
) -> None:
    sandbox.inject(Fault.server_error(500))
    policy = RetryPolicy(retry_outcome_unknown=True, initial_backoff=0.001)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        message = await client.sms.send(FROM, TO, "exactly once")

    assert len(sandbox.messages) == 1
    assert message.id == sandbox.messages[0].id
    assert len(sandbox.requests) == 2
    assert len(keys(sandbox)) == 1
    assert sandbox.requests[1].replayed


async def test_retrying_by_hand_with_the_errors_key_does_not_send_twice(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.server_error(500))
    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sms.send(FROM, TO, "by hand")

    message = await client.sms.send(
        FROM, TO, "by hand", idempotency_key=caught.value.idempotency_key
    )

    assert len(sandbox.messages) == 1
    assert message.id == sandbox.messages[0].id


async def test_on_retry_sees_every_retry_and_wait(sandbox: Sandbox) -> None:
    events: list[RetryEvent] = []
    sandbox.inject(Fault.unavailable(times=2))
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, on_retry=events.append)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        await client.sms.send(FROM, TO, "x")

    assert [event.attempt for event in events] == [1, 2]
    assert all(isinstance(event.error, ServiceUnavailableError) for event in events)
    assert all(0 <= event.wait <= 0.002 for event in events)
    assert {event.idempotency_key for event in events} == keys(sandbox)


async def test_retries_are_logged_at_info_and_attempts_at_debug(
    client: AsyncVoipNumber, sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.inject(Fault.unavailable())
    caplog.set_level(logging.DEBUG, logger="voipnumber")

    await client.sms.send(FROM, TO, "x")

    retries = [r for r in caplog.records if r.levelno == logging.INFO and "retrying" in r.message]
    attempts = [r for r in caplog.records if r.levelno == logging.DEBUG and "attempt" in r.message]
    assert len(retries) == 1
    assert "ServiceUnavailableError" in retries[0].message
    assert len(attempts) >= 2


def test_backoff_is_full_jitter_capped_by_max_backoff() -> None:
    policy = RetryPolicy(initial_backoff=1, max_backoff=4)
    waits = [policy.backoff(attempt) for attempt in range(1, 8) for _ in range(200)]

    assert all(0 <= wait <= 4 for wait in waits)
    assert max(policy.backoff(1) for _ in range(200)) <= 1
    assert max(waits) > 2  # the cap grows with the attempts


def test_next_wait_is_the_whole_decision_attempts_then_deadline_then_retry_after() -> None:
    policy = RetryPolicy(max_retries=2, initial_backoff=1, max_backoff=1, deadline=10)
    unavailable = ServiceUnavailableError("down")
    limited = RateLimitError("slow down", retry_after=3)

    assert policy.next_wait(unavailable, attempt=1, elapsed=0) is not None
    assert policy.next_wait(unavailable, attempt=2, elapsed=0) is not None
    assert policy.next_wait(unavailable, attempt=3, elapsed=0) is None  # retries spent
    assert policy.next_wait(limited, attempt=1, elapsed=0) == 3  # the service's wait
    assert policy.next_wait(limited, attempt=1, elapsed=7) == 3  # ends at 10: in time
    assert policy.next_wait(limited, attempt=1, elapsed=7.01) is None  # ends past it
    assert policy.next_wait(OutcomeUnknownError("?"), attempt=1, elapsed=0) is None
    assert policy.next_wait(RateLimitError("later", retry_after=61), attempt=1, elapsed=0) is None


def test_backoff_follows_tenacitys_exponential_schedule_with_full_jitter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    highs: list[float] = []
    monkeypatch.setattr("random.uniform", lambda low, high: highs.append(high) or high)
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=3)

    assert [policy.backoff(attempt) for attempt in range(1, 6)] == [0.5, 1, 2, 3, 3]
    assert highs == [0.5, 1, 2, 3, 3]


def test_the_default_policy_retries_only_what_was_certainly_not_processed() -> None:
    policy = RetryPolicy()
    assert policy.should_retry(ServiceUnavailableError("x"))
    assert policy.should_retry(RateLimitError("x", retry_after=1))
    assert not policy.should_retry(RateLimitError("x", retry_after=3600))
    assert not policy.should_retry(OutcomeUnknownError("x"))
    assert RetryPolicy(retry_outcome_unknown=True).should_retry(OutcomeUnknownError("x"))


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_retries": -1},
        {"initial_backoff": 0},
        {"max_backoff": -1},
        {"deadline": 0},
        {"max_retry_after": -1},
    ],
)
def test_an_invalid_policy_is_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_the_policy_is_keyword_only_and_frozen() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[misc]
    policy = RetryPolicy()
    with pytest.raises(AttributeError):
        policy.max_retries = 5  # type: ignore[misc]


async def test_an_on_retry_hook_that_raises_does_not_change_the_outcome(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: RetryEvent) -> None:
        raise RuntimeError("observer bug")

    sandbox.inject(Fault.unavailable())
    policy = RetryPolicy(initial_backoff=0.001, on_retry=broken)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        await client.sms.send(FROM, TO, "x")

    assert len(sandbox.messages) == 1
    assert "on_retry raised" in caplog.text


async def pause_the_client(
    client: AsyncVoipNumber, sandbox: Sandbox, retry_after: float
) -> tuple[asyncio.Task[SentMessage], float]:
    """Send "limited" into a 429 the client waits out: its task, and when the 429 came."""
    sandbox.inject(Fault.rate_limited(retry_after=retry_after))
    limited_send = asyncio.create_task(client.sms.send(FROM, TO, "limited"))
    limited_at = await first_429(sandbox)
    # The sandbox records its 429 before the client reads it: wait for the client's
    # pause itself, or a call made now could still go out before it (a flaky test).
    for _ in range(3000):
        if client._pacer.paused_for() > 0:  # type: ignore[attr-defined]
            return limited_send, limited_at
        await asyncio.sleep(0.005)
    raise AssertionError("the client never paused")


async def first_429(sandbox: Sandbox) -> float:
    """When the sandbox answered its first 429 (waits for it)."""
    while True:
        limited = [r.received_at for r in sandbox.requests if r.status == 429]
        if limited:
            return limited[0]
        await asyncio.sleep(0.005)


async def test_a_429_pauses_every_request_of_the_client_and_its_copies(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    limited_send, limited_at = await pause_the_client(client, sandbox, retry_after=0.3)

    await client.with_options(timeout=10).sms.send(FROM, TO, "other")
    await limited_send

    other_at = next(r.received_at for r in sandbox.requests if b'"other"' in r.body)
    assert other_at >= limited_at + 0.3 - 0.05  # waited out the other request's Retry-After
    assert sorted(m.body for m in sandbox.messages) == ["limited", "other"]


async def test_a_call_whose_policy_would_not_wait_that_long_is_refused_unsent(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    limited_send, _ = await pause_the_client(client, sandbox, retry_after=1)
    impatient = client.with_options(retry=RetryPolicy(max_retry_after=0.3))

    with pytest.raises(RateLimitError, match="paused") as caught:
        await impatient.sms.send(FROM, TO, "impatient")

    assert not limited_send.done()  # refused at once, while the pause still holds
    assert caught.value.retry_after is not None and 0.3 < caught.value.retry_after <= 1
    assert (caught.value.may_have_been_sent, caught.value.attempts) == (False, 0)
    await limited_send
    assert sorted(m.body for m in sandbox.messages) == ["limited"]
    assert not any(b'"impatient"' in r.body for r in sandbox.requests)


async def test_a_429_that_is_raised_pauses_nothing(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=1))
    pacer = LocalPacer()
    async with AsyncVoipNumber(**sandbox.client_settings(), max_retries=0, pacer=pacer) as client:
        with pytest.raises(RateLimitError):
            await client.sms.send(FROM, TO, "limited")
        assert (pacer.pauses, pacer.paused_for()) == (0, 0)

        await client.sms.send(FROM, TO, "other")

    assert [m.body for m in sandbox.messages] == ["other"]


async def test_closing_the_client_during_a_pause_sends_nothing_more(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    limited_send, _ = await pause_the_client(client, sandbox, retry_after=0.3)
    waiting = asyncio.create_task(client.sms.send(FROM, TO, "waiting"))
    await asyncio.sleep(0.1)

    await client.aclose()

    for task in (limited_send, waiting):
        with pytest.raises(ClientClosedError):
            await task
    await asyncio.sleep(0.4)  # past the pause: still nothing
    assert sandbox.messages == []
    assert len(sandbox.requests) == 1  # the 429, nothing after


async def test_a_retry_after_beyond_the_cap_is_raised_and_pauses_nothing(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=120))  # over max_retry_after (60)
    with pytest.raises(RateLimitError):
        await client.sms.send(FROM, TO, "limited")
    pacer = client._pacer
    assert isinstance(pacer, LocalPacer)
    assert (pacer.pauses, pacer.paused_for()) == (0, 0)

    await client.sms.send(FROM, TO, "other")

    assert [m.body for m in sandbox.messages] == ["other"]


async def test_a_retry_after_equal_to_the_cap_is_honoured(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=0.2))
    policy = RetryPolicy(max_retry_after=0.2, initial_backoff=0.001)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        message = await client.sms.send(FROM, TO, "at the cap")

    assert message.body == "at the cap"
    assert [r.status for r in sandbox.requests] == [429, 200]
