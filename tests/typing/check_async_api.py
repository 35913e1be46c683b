"""The public async API as users type it; checked by `nox -s mypy`, never run."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from typing_extensions import assert_type

from voipnumber_async import (
    AsyncVoipNumber,
    OutcomeUnknownError,
    RateLimitError,
    RetryEvent,
    RetryPolicy,
    SegmentEstimate,
    SentMessage,
    Timeout,
    VoipNumberError,
    estimate_segments,
)
from voipnumber_async.redis import RedisPacer, pacer_key
from voipnumber_async.sandbox import Fault, Sandbox


async def send(client: AsyncVoipNumber) -> None:
    message = await client.sms.send("+447445459147", "+447483866525", "Thank you")
    assert_type(message, SentMessage)
    assert_type(message.id, str)
    assert_type(message.timestamp_s, int)
    assert_type(message.created, datetime)
    assert_type(message.extra, dict[str, Any])
    keyed = await client.sms.send(from_="+447445459147", to="+1", body="x", idempotency_key="k")
    assert_type(keyed, SentMessage)


async def configure() -> None:
    def log(event: RetryEvent) -> None:
        assert_type(event.error, VoipNumberError)

    policy = RetryPolicy(max_retries=3, deadline=None, on_retry=log, retry_outcome_unknown=True)
    async with AsyncVoipNumber("acc", "tok", timeout=Timeout(connect=2), retry=policy) as client:
        assert_type(client, AsyncVoipNumber)
        assert_type(client.with_options(timeout=5.0, max_retries=0), AsyncVoipNumber)
        client.rotate_api_token("new")


async def handle(client: AsyncVoipNumber) -> None:
    try:
        await client.sms.send("+447445459147", "+447483866525", "x")
    except RateLimitError as error:
        assert_type(error.retry_after, float | None)
    except OutcomeUnknownError as error:
        assert_type(error.idempotency_key, str | None)
        assert_type(error.may_have_been_sent, bool)


async def sandbox() -> None:
    async with Sandbox() as running:
        running.inject(Fault.unavailable(times=2), Fault.rate_limited(retry_after=1))
        async with AsyncVoipNumber(**running.client_settings()) as client:
            await client.sms.send("+447445459147", "+447483866525", "x")


def segments() -> None:
    assert_type(estimate_segments("x"), SegmentEstimate)


async def shared_rate() -> None:
    pacer = RedisPacer("redis://localhost:6379/0", rate=50, key=pacer_key("acct"))
    async with pacer, AsyncVoipNumber(pacer=pacer) as client:
        await client.sms.send("+447445459147", "+447483866525", "x")
    assert_type(pacer.paused_for(), float)
    assert_type(pacer.acquire(max_wait=1.0), Awaitable[None] | None)
    async with Sandbox(rate_limit=10) as running:
        assert_type(running.rate_limit, float | None)


async def campaign_journal(client: AsyncVoipNumber) -> None:
    from voipnumber_async import Journal
    from voipnumber_async.redis import (
        CampaignStatus,
        JournalRecord,
        Outcome,
        RedisJournal,
        campaign_keys,
    )

    async with RedisJournal("redis://localhost:6379/0", "spring", offset=5000) as journal:
        journal_seam: Journal = journal  # a Journal, as send_many takes it
        await journal.declare(total=10_000, fingerprint="spring.csv")
        async for result in client.sms.send_many([], journal=journal_seam):
            assert_type(result.idempotency_key, str | None)
        status = await journal.status()
        assert_type(status, CampaignStatus)
        assert_type(status.remaining, int | None)
        assert_type(status.failed_by_class, dict[str, int])
        assert_type(await journal.outcomes(0, 10), list[Outcome])
        async for record in journal.results():
            assert_type(record, JournalRecord)
    assert_type(campaign_keys("spring"), list[str])
