"""`RedisJournal` against a real redis-server and the sandbox.

The `Journal` protocol's promises as `tests/test_bulk_journal.py` states them, kept by
a journal that any process can resume: nothing is sent twice across runs, clients and
chunks; failed messages are sent again, unknown ones only when asked, with the key they
first had; another input is refused before anything is sent; Redis going away stops a
run with nothing sent unjournaled.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio
from _redis import RedisServer
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ConfigurationError,
    Journal,
    JournalMismatchError,
    OutgoingMessage,
    RedisUnavailableError,
    RetryPolicy,
    SendResult,
)
from voipnumber_async._bulk.messages import stopped_result
from voipnumber_async.redis import (
    CampaignStatus,
    JournalRecord,
    RedisJournal,
    campaign_idempotency_key,
    campaign_key,
    campaign_keys,
)
from voipnumber_async.sandbox import Fault, Sandbox

CAMPAIGN = "spring-sale"


def messages(count: int, prefix: str = "m", start: int = 0) -> list[OutgoingMessage]:
    return [OutgoingMessage(from_=FROM, to=TO, body=f"{prefix}{i}") for i in range(start, count)]


def accepted(sandbox: Sandbox) -> Counter[str]:
    """How many times each body was accepted: what a real service would have sent."""
    return Counter(message.body for message in sandbox.messages)


async def run(
    client: AsyncVoipNumber, journal: RedisJournal, batch: Any, **options: Any
) -> list[SendResult]:
    async with client.sms.send_many(batch, journal=journal, **options) as results:
        return [result async for result in results]


@pytest.fixture
async def journal(redis_url: str) -> AsyncIterator[RedisJournal]:
    async with RedisJournal(redis_url, CAMPAIGN) as opened:
        yield opened


@pytest.fixture
def no_retries(sandbox: Sandbox) -> dict[str, Any]:
    """Client settings for the sandbox with retrying off: one fault, one outcome."""
    return {**sandbox.client_settings(), "retry": RetryPolicy(max_retries=0)}


def test_a_redis_journal_is_a_journal(redis_url: str) -> None:
    assert isinstance(RedisJournal(redis_url, CAMPAIGN), Journal)


async def test_every_message_is_sent_once_with_its_derived_key(
    client: AsyncVoipNumber, sandbox: Sandbox, journal: RedisJournal
) -> None:
    batch = messages(300)
    results = await run(client, journal, batch)

    assert all(result.ok for result in results)
    assert accepted(sandbox) == Counter(m.body for m in batch)
    keys = {message.body: message.idempotency_key for message in sandbox.messages}
    assert keys == {m.body: campaign_idempotency_key(CAMPAIGN, i, m) for i, m in enumerate(batch)}
    status = await journal.status()
    assert (status.sent, status.failed, status.unknown, status.reserved) == (300, 0, 0, 0)


def test_derived_keys_are_valid_keys_of_the_campaign_position_and_content() -> None:
    message = OutgoingMessage(from_=FROM, to=TO, body="hello")
    key = campaign_idempotency_key(CAMPAIGN, 7, message)
    assert re.fullmatch(r"vn1-[0-9a-f]{32}", key)  # visible ASCII, 36 of the 255 allowed
    assert key == campaign_idempotency_key(CAMPAIGN, 7, message)  # any process, any time
    others = {
        campaign_idempotency_key("other", 7, message),
        campaign_idempotency_key(CAMPAIGN, 8, message),
        campaign_idempotency_key(CAMPAIGN, 7, OutgoingMessage(from_=FROM, to=TO, body="hi")),
    }
    assert key not in others and len(others) == 3
    own = OutgoingMessage(from_=FROM, to=TO, body="hello", idempotency_key="mine-1")
    assert campaign_idempotency_key(CAMPAIGN, 7, own) == "mine-1"  # a message's own key wins


async def test_a_message_s_own_key_is_the_one_sent(
    client: AsyncVoipNumber, sandbox: Sandbox, journal: RedisJournal
) -> None:
    batch = [OutgoingMessage(from_=FROM, to=TO, body="x", idempotency_key="order-42")]
    await run(client, journal, batch)
    assert [m.idempotency_key for m in sandbox.messages] == ["order-42"]


async def test_a_stopped_run_resumed_from_another_client_sends_nothing_twice(
    client: AsyncVoipNumber, sandbox: Sandbox, redis_url: str
) -> None:
    batch = messages(2000)
    async with (
        RedisJournal(redis_url, CAMPAIGN) as first,
        client.sms.send_many(batch, journal=first, concurrency=5) as results,
    ):
        async for result in results:
            if result.index >= 30:
                results.stop()
    sent_first = results.summary.sent
    assert 0 < sent_first < 2000

    async with RedisJournal(redis_url, CAMPAIGN) as second:  # another process's
        resumed = client.sms.send_many(batch, journal=second, concurrency=5)
        again = [result async for result in resumed]
        status = await second.status()

    assert len(again) == 2000 and all(result.ok for result in again)
    assert resumed.summary.already_sent == sent_first
    assert accepted(sandbox) == Counter(m.body for m in batch)  # each exactly once
    assert (status.sent, status.reserved) == (2000, 0)


async def test_a_crash_after_reserving_is_reported_unknown_and_resent_only_when_asked(
    client: AsyncVoipNumber, sandbox: Sandbox, journal: RedisJournal
) -> None:
    batch = messages(3)
    entries = await journal.reserve(0, batch)  # then the process died, sending or not
    assert [entry.outcome for entry in entries] == ["reserved"] * 3

    reviewed = await run(client, journal, batch)
    assert [r.outcome for r in reviewed] == ["unknown"] * 3 and all(r.resumed for r in reviewed)
    assert sandbox.request_count == 0

    resent = await run(client, journal, batch, resend_unknown=True)
    assert all(result.ok for result in resent)
    keys = sorted(m.idempotency_key or "" for m in sandbox.messages)
    assert keys == sorted(entry.idempotency_key for entry in entries)  # the keys of the crash


async def test_an_unknown_outcome_is_resent_with_the_same_key(
    no_retries: dict[str, Any], sandbox: Sandbox, journal: RedisJournal
) -> None:
    sandbox.inject(Fault.server_error())  # accepted, answered 500: outcome unknown
    async with AsyncVoipNumber(**no_retries) as client:
        first = await run(client, journal, messages(1))
        assert first[0].outcome == "unknown"
        assert (await journal.status()).unknown == 1

        reviewed = await run(client, journal, messages(1))
        assert reviewed[0].outcome == "unknown" and sandbox.request_count == 1

        resent = await run(client, journal, messages(1), resend_unknown=True)

    assert resent[0].ok
    keys = [request.idempotency_key for request in sandbox.requests]
    assert keys == [first[0].idempotency_key] * 2
    assert sandbox.replayed_count == 1 and len(sandbox.messages) == 1  # sent once, in the end
    status = await journal.status()
    assert (status.sent, status.unknown) == (1, 0)


async def test_a_failed_message_is_counted_by_class_and_sent_again_on_resume(
    no_retries: dict[str, Any], sandbox: Sandbox, journal: RedisJournal
) -> None:
    sandbox.inject(Fault.unavailable())  # 503: certainly not sent
    async with AsyncVoipNumber(**no_retries) as client:
        first = await run(client, journal, messages(5), concurrency=1)
        assert sum(r.outcome == "failed" for r in first) == 1
        status = await journal.status()
        assert status.failed_by_class == {"ServiceUnavailableError": 1}
        assert (status.failed, status.sent) == (1, 4)

        again = await run(client, journal, messages(5))

    assert sum(not r.resumed for r in again) == 1 and all(r.ok for r in again)
    assert accepted(sandbox) == Counter(m.body for m in messages(5))
    status = await journal.status()
    assert (status.failed_by_class, status.sent) == ({}, 5)


async def test_another_input_is_refused_before_anything_of_it_is_sent(
    client: AsyncVoipNumber, sandbox: Sandbox, journal: RedisJournal
) -> None:
    await run(client, journal, messages(20))
    with pytest.raises(JournalMismatchError, match=r"message 0 .*another input") as caught:
        await run(client, journal, messages(20, prefix="other"))
    assert caught.value.field == "campaign"
    assert sandbox.request_count == 20


async def test_a_mismatch_anywhere_in_a_batch_reserves_none_of_it(journal: RedisJournal) -> None:
    await journal.reserve(5, messages(1))
    changed = messages(4)
    changed[3] = OutgoingMessage(from_=FROM, to=TO, body="changed")
    with pytest.raises(JournalMismatchError, match="message 5"):
        await journal.reserve(2, changed)
    assert await journal.outcomes(0, 7) == ["new"] * 5 + ["reserved", "new"]


async def test_declare_sets_total_and_fingerprint_once_and_refuses_others(
    journal: RedisJournal,
) -> None:
    await journal.declare(total=100, fingerprint="input-v1")
    await journal.declare(total=100, fingerprint="input-v1")
    await journal.declare()  # checks nothing
    with pytest.raises(JournalMismatchError, match="new campaign a new name"):
        await journal.declare(fingerprint="input-v2")
    with pytest.raises(JournalMismatchError, match="total '100', not '99'"):
        await journal.declare(total=99)
    assert (await journal.status()).total == 100


async def test_declare_sets_what_was_not_yet_known(journal: RedisJournal) -> None:
    await journal.declare(fingerprint="input-v1")
    await journal.declare(total=10, fingerprint="input-v1")
    assert (await journal.status()).total == 10


async def test_two_chunks_with_offsets_make_one_campaign(
    client: AsyncVoipNumber, sandbox: Sandbox, redis_url: str
) -> None:
    campaign = messages(200)
    other_client = redis.asyncio.Redis.from_url(redis_url)  # as another process's
    async with (
        RedisJournal(redis_url, CAMPAIGN, offset=0) as first,
        RedisJournal(other_client, CAMPAIGN, offset=100) as second,
    ):
        await first.declare(total=200)
        await run(client, first, campaign[:100])
        await run(client, second, campaign[100:])
        status = await first.status()
        outcomes = await first.outcomes(0, 201)
    await other_client.aclose()

    assert (status.sent, status.remaining, status.done) == (200, 0, True)
    assert outcomes == ["sent"] * 200 + ["new"]
    keys = {m.body: m.idempotency_key for m in sandbox.messages}
    assert keys["m100"] == campaign_idempotency_key(CAMPAIGN, 100, campaign[100])


async def test_a_chunk_resumed_from_its_own_offset_sends_nothing_twice(
    client: AsyncVoipNumber, sandbox: Sandbox, redis_url: str
) -> None:
    chunk = messages(150, start=50)
    async with RedisJournal(redis_url, CAMPAIGN, offset=50) as journal:
        await run(client, journal, chunk)
        again = await run(client, journal, chunk)
        assert await journal.outcomes(49, 51) == ["new", "sent"]
    assert all(r.resumed for r in again) and sandbox.request_count == 100


async def test_status_counts_what_remains_and_what_is_in_flight(journal: RedisJournal) -> None:
    await journal.declare(total=10)
    batch = messages(4)
    await journal.reserve(0, batch)
    status = await journal.status()
    assert isinstance(status, CampaignStatus)
    assert (status.reserved, status.remaining, status.done) == (4, 6, False)

    await journal.record([stopped_result(1, batch[1], None, may_have_been_sent=False)])
    status = await journal.status()
    assert (status.reserved, status.remaining) == (3, 7)  # a stopped one is to send again


async def test_status_of_a_campaign_never_declared_has_no_total(journal: RedisJournal) -> None:
    status = await journal.status()
    assert (status.campaign, status.total, status.remaining, status.done) == (
        CAMPAIGN, None, None, False,
    )  # fmt: skip
    assert (status.started_at, status.rate_per_s) == (None, 0.0)


async def test_status_has_a_rate_and_times_once_messages_are_sent(
    client: AsyncVoipNumber, journal: RedisJournal
) -> None:
    await run(client, journal, messages(50))
    status = await journal.status()
    assert status.rate_per_s > 0
    assert status.started_at is not None and status.updated_at is not None
    assert status.started_at <= status.updated_at


async def test_outcomes_tell_each_position_s_state(
    no_retries: dict[str, Any], sandbox: Sandbox, journal: RedisJournal
) -> None:
    sandbox.inject(Fault.unavailable(), Fault.server_error())
    async with AsyncVoipNumber(**no_retries) as client:
        await run(client, journal, messages(4), concurrency=1, ordered=True)
    batch = messages(6)
    await journal.reserve(4, batch[4:])
    await journal.record([stopped_result(5, batch[5], None, may_have_been_sent=False)])

    outcomes = await journal.outcomes(0, 7)
    assert outcomes == ["failed", "unknown", "sent", "sent", "reserved", "not_sent", "new"]


async def test_recording_twice_leaves_the_same_state(
    client: AsyncVoipNumber, journal: RedisJournal
) -> None:
    results = await run(client, journal, messages(10))
    before = await journal.status()
    await journal.record(results)
    await journal.record(results)
    after = await journal.status()
    assert (after.sent, after.reserved, after.failed) == (before.sent, 0, 0) == (10, 0, 0)


async def test_a_stopped_message_is_reserved_again_with_the_same_key(
    journal: RedisJournal,
) -> None:
    batch = messages(1)
    (first,) = await journal.reserve(0, batch)
    await journal.record([stopped_result(0, batch[0], first.idempotency_key,
                                         may_have_been_sent=False)])  # fmt: skip
    (again,) = await journal.reserve(0, batch)
    assert (again.outcome, again.idempotency_key) == ("reserved", first.idempotency_key)


async def test_results_list_failures_with_their_class_and_key(
    no_retries: dict[str, Any], sandbox: Sandbox, journal: RedisJournal
) -> None:
    sandbox.inject(Fault.unavailable())
    async with AsyncVoipNumber(**no_retries) as client:
        results = await run(client, journal, messages(3), concurrency=1, ordered=True)

    records = [record async for record in journal.results()]
    assert records == [
        JournalRecord(position=0, outcome="failed", idempotency_key=results[0].idempotency_key,
                      error_class="ServiceUnavailableError", error_code="SERVICE_UNAVAILABLE"),
        JournalRecord(position=1, outcome="sent"),
        JournalRecord(position=2, outcome="sent"),
    ]  # fmt: skip


async def test_kept_sent_messages_come_back_with_their_id_and_key(
    client: AsyncVoipNumber, sandbox: Sandbox, redis_url: str
) -> None:
    async with RedisJournal(redis_url, CAMPAIGN, keep_sent=True) as journal:
        await run(client, journal, messages(3))
        records = [record async for record in journal.results()]
        resumed = await run(client, journal, messages(3))

    by_body = {m.body: (m.id, m.idempotency_key) for m in sandbox.messages}
    assert [(r.message_id, r.idempotency_key) for r in records] == [
        by_body[f"m{i}"] for i in range(3)
    ]
    assert sorted(r.sent.id for r in resumed if r.sent) == sorted(i for i, _ in by_body.values())


async def test_a_resumed_sent_message_without_keep_sent_is_a_placeholder(
    client: AsyncVoipNumber, journal: RedisJournal
) -> None:
    await run(client, journal, messages(1))
    (resumed,) = await run(client, journal, messages(1))
    assert resumed.resumed and resumed.sent is not None
    assert (resumed.sent.id, resumed.sent.body, resumed.sent.timestamp_s) == ("", "m0", 0)


async def test_redis_down_fails_the_run_before_anything_is_sent_and_it_resumes_when_back(
    client: AsyncVoipNumber, sandbox: Sandbox, own_redis_server: RedisServer
) -> None:
    async with RedisJournal(own_redis_server.url, CAMPAIGN) as journal:
        own_redis_server.kill()
        with pytest.raises(RedisUnavailableError, match="reserve messages; nothing was sent"):
            await run(client, journal, messages(10))
        with pytest.raises(RedisUnavailableError):
            await journal.status()
        assert sandbox.request_count == 0

        own_redis_server.start()
        results = await run(client, journal, messages(10))
    assert all(r.ok for r in results) and sandbox.request_count == 10


async def test_redis_lost_mid_run_stops_it_and_a_resume_sends_nothing_twice(
    client: AsyncVoipNumber, sandbox: Sandbox, own_redis_server: RedisServer
) -> None:
    batch = messages(1000)
    async with RedisJournal(own_redis_server.url, CAMPAIGN) as journal:
        with pytest.raises(RedisUnavailableError):
            async with client.sms.send_many(batch, journal=journal, concurrency=5) as results:
                async for result in results:
                    if result.index >= 50:
                        own_redis_server.kill()  # durable: it keeps what it acknowledged
        assert 50 <= sandbox.request_count < 1000

        own_redis_server.start()
        resumed = await run(client, journal, batch, resend_unknown=True)
        status = await journal.status()

    assert all(r.ok for r in resumed)
    assert accepted(sandbox) == Counter(m.body for m in batch)  # resent ones were replayed
    assert (status.sent, status.unknown, status.reserved) == (1000, 0, 0)


@pytest.mark.parametrize("name", ["", "two words", "tab\there", "nul\x00", "x" * 201, 7])
def test_a_campaign_name_must_be_one_printable_word(redis_url: str, name: Any) -> None:
    with pytest.raises(ConfigurationError, match="campaign name") as caught:
        RedisJournal(redis_url, name)
    assert caught.value.field == "campaign"


def test_an_offset_must_be_a_whole_number(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="offset"):
        RedisJournal(redis_url, CAMPAIGN, offset=-1)


def test_a_campaign_s_keys_share_its_hash_tag() -> None:
    assert campaign_key("spring", "sent") == "voipnumber:campaign:{spring}:sent"
    assert all(key.startswith("voipnumber:campaign:{spring}:") for key in campaign_keys("spring"))


async def test_deleting_campaign_keys_forgets_the_campaign(
    no_retries: dict[str, Any], sandbox: Sandbox, redis_url: str
) -> None:
    sandbox.inject(Fault.unavailable(), Fault.server_error())
    connection = redis.asyncio.Redis.from_url(redis_url)
    async with (
        AsyncVoipNumber(**no_retries) as client,
        RedisJournal(connection, CAMPAIGN, keep_sent=True) as journal,
    ):
        await journal.declare(total=5, fingerprint="f")
        await run(client, journal, messages(5))
        assert await connection.dbsize() > 0
        await connection.delete(*campaign_keys(CAMPAIGN))
        assert await connection.dbsize() == 0  # no key of the campaign left behind
        assert (await journal.status()).sent == 0
    await connection.aclose()


async def test_a_client_of_yours_is_used_with_decoded_answers_and_left_open(
    client: AsyncVoipNumber, redis_url: str
) -> None:
    connection = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    async with RedisJournal(connection, CAMPAIGN, keep_sent=True) as journal:
        await run(client, journal, messages(3))
        await run(client, journal, messages(3))
        assert [r.outcome async for r in journal.results()] == ["sent"] * 3
    assert await connection.ping()  # not closed by the journal
    await connection.aclose()


async def test_other_campaigns_are_separate(client: AsyncVoipNumber, redis_url: str) -> None:
    async with (
        RedisJournal(redis_url, "a") as first,
        RedisJournal(redis_url, "b") as second,
    ):
        await run(client, first, messages(3))
        await run(client, second, messages(3, prefix="other"))  # no mismatch: its own
        assert ((await first.status()).sent, (await second.status()).sent) == (3, 3)


async def test_a_closed_journal_reconnects_when_used_again(redis_url: str) -> None:
    journal = RedisJournal(redis_url, CAMPAIGN)
    await journal.reserve(0, messages(1))
    await journal.aclose()
    await journal.aclose()  # twice is harmless
    assert await journal.outcomes(0, 1) == ["reserved"]
    await journal.aclose()
