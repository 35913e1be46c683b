"""send_many: one result per message, nothing lost, nothing sent twice, limits held."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path

import attrs
import pytest
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ConfigurationError,
    InvalidRequestError,
    JournalEntry,
    JournalMismatchError,
    MessageInvalidError,
    OutcomeUnknownError,
    OutgoingMessage,
    RetryPolicy,
    SendResult,
    SqliteJournal,
)
from voipnumber_async._models import SentMessage
from voipnumber_async.sandbox import Fault, Sandbox

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.005, max_retry_after=2)


def messages(count: int, prefix: str = "m") -> Iterator[OutgoingMessage]:
    return (OutgoingMessage(from_=FROM, to=TO, body=f"{prefix}{i}") for i in range(count))


async def collect(run: object) -> list[SendResult]:
    return [result async for result in run]  # type: ignore[attr-defined]


def accepted_bodies(sandbox: Sandbox) -> Counter[str]:
    return Counter(message.body for message in sandbox.messages)


@pytest.fixture
async def bulk_client(sandbox: Sandbox) -> AsyncIterator[AsyncVoipNumber]:
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=FAST) as client:
        yield client


async def test_every_message_gets_one_result_and_is_sent_once(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    results = await collect(bulk_client.sms.send_many(messages(500), concurrency=25))

    assert sorted(r.index for r in results) == list(range(500))
    assert all(r.ok and r.error is None for r in results)
    assert accepted_bodies(sandbox) == Counter(f"m{i}" for i in range(500))
    assert {r.sent.id for r in results if r.sent} == {m.id for m in sandbox.messages}


async def test_under_faults_every_result_is_honest_and_nothing_is_sent_twice() -> None:
    async with Sandbox(seed=11) as sandbox:
        sandbox.inject(
            Fault.unavailable(times=None, rate=0.05),
            Fault.rate_limited(retry_after=0.05, times=None, rate=0.005),
            Fault.server_error(500, times=None, rate=0.03),
            Fault.dropped_connection(times=None, rate=0.02),
        )
        async with AsyncVoipNumber(**sandbox.client_settings(), retry=FAST) as client:
            run = client.sms.send_many(messages(600), concurrency=20)
            results = await collect(run)

        by_key = sandbox.messages_by_key()

    assert sorted(r.index for r in results) == list(range(600))
    outcomes = Counter(r.outcome for r in results)
    assert outcomes["unknown"] > 0 and outcomes["sent"] > 500  # the faults did bite
    reported = {r.idempotency_key: r for r in results}
    for key, accepted in by_key.items():
        assert len(accepted) == 1, f"key {key} was accepted {len(accepted)} times"
        assert reported[key].outcome in ("sent", "unknown")  # nothing unreported went out
    for result in results:
        if result.outcome == "sent":
            assert result.sent is not None
            assert by_key[result.idempotency_key][0].id == result.sent.id
        elif result.outcome == "failed":
            assert result.idempotency_key not in by_key
    summary = run.summary
    assert (summary.sent, summary.unknown, summary.failed_total) == (
        outcomes["sent"], outcomes["unknown"], outcomes["failed"],
    )  # fmt: skip
    assert summary.results == 600
    assert summary.retried > 0


async def test_concurrency_never_exceeds_the_limit(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.slow(0.02, times=None))

    await collect(bulk_client.sms.send_many(messages(120), concurrency=7))

    assert sandbox.peak_in_flight == 7


async def test_the_rate_limit_holds_without_bursts(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    await collect(bulk_client.sms.send_many(messages(150), concurrency=20, rate_limit=100.0))

    times = sorted(request.received_at for request in sandbox.requests)
    assert len(times) == 150
    # Measured once each of the 20 workers has its connection: a first request that
    # opens one reaches the server late, bunched with the on-time ones after it, with no
    # burst from the pacer (its turns are evenly spaced from the first).
    steady = times[20:]
    assert (len(steady) - 1) / (steady[-1] - steady[0]) <= 105  # within 5% over the run
    for index, start in enumerate(steady):  # and over any half second within it
        in_window = sum(1 for t in steady[index:] if t < start + 0.5)
        assert in_window <= 50 * 1.05 + 1


async def test_one_429_pauses_every_worker_for_its_retry_after(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=1))

    run = bulk_client.sms.send_many(messages(60), concurrency=10)
    results = await collect(run)

    paused_at = next(r.received_at for r in sandbox.requests if r.status == 429)
    during_pause = [
        r for r in sandbox.requests if paused_at + 0.1 < r.received_at < paused_at + 0.9
    ]
    assert during_pause == []
    assert all(r.ok for r in results)
    assert run.summary.rate_limited == 1
    assert len(sandbox.messages) == 60


async def test_a_429_to_one_run_pauses_the_other_runs_of_the_client(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=1))

    await asyncio.gather(
        collect(bulk_client.sms.send_many(messages(60, "a"), concurrency=5, rate_limit=100.0)),
        collect(bulk_client.sms.send_many(messages(60, "b"), concurrency=5, rate_limit=100.0)),
    )

    paused_at = next(r.received_at for r in sandbox.requests if r.status == 429)
    assert not [r for r in sandbox.requests if paused_at + 0.1 < r.received_at < paused_at + 0.9]
    assert len(sandbox.messages) == 120


async def test_ordered_results_come_in_input_order(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.slow(0.01, times=None, rate=0.3))

    results = await collect(bulk_client.sms.send_many(messages(200), concurrency=16, ordered=True))

    assert [r.index for r in results] == list(range(200))
    assert [r.message.body for r in results] == [f"m{i}" for i in range(200)]


async def test_input_is_read_lazily_even_when_endless(bulk_client: AsyncVoipNumber) -> None:
    read = itertools.count()

    def endless() -> Iterator[tuple[str, str, str]]:
        for number in read:
            yield (FROM, TO, f"n{number}")

    async with bulk_client.sms.send_many(endless(), concurrency=5) as results:
        async for result in results:
            if result.index >= 20:
                break

    assert next(read) < 400  # a bounded window ahead of the caller, not the whole input


async def test_tuples_dicts_and_async_iterables_are_accepted(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    async def source() -> AsyncIterator[object]:
        yield (FROM, TO, "tuple")
        yield {"from": FROM, "to": TO, "body": "dict"}
        yield {"from_": FROM, "to": TO, "body": "dict_", "idempotency_key": "my-key-1"}
        yield OutgoingMessage(from_=FROM, to=TO, body="model")

    results = await collect(bulk_client.sms.send_many(source(), ordered=True))  # type: ignore[arg-type]

    assert [r.message.body for r in results] == ["tuple", "dict", "dict_", "model"]
    assert results[2].idempotency_key == "my-key-1"
    assert sorted(accepted_bodies(sandbox)) == ["dict", "dict_", "model", "tuple"]


async def test_an_invalid_message_is_a_failed_result_not_the_end_of_the_run(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    batch = [(FROM, TO, "fine"), (FROM, "0748 3866525", "bad number"), (FROM, TO, "")]

    results = await collect(bulk_client.sms.send_many(batch, ordered=True))

    assert [r.outcome for r in results] == ["sent", "failed", "failed"]
    assert isinstance(results[1].error, InvalidRequestError)
    assert results[1].error.field == "to"
    assert isinstance(results[2].error, InvalidRequestError)
    assert [m.body for m in sandbox.messages] == ["fine"]


async def test_something_that_is_not_a_message_stops_the_run_with_a_clear_error(
    bulk_client: AsyncVoipNumber,
) -> None:
    with pytest.raises(InvalidRequestError, match="OutgoingMessage, a"):
        await collect(bulk_client.sms.send_many([(FROM, TO, "ok"), 42]))  # type: ignore[list-item]


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_an_input_that_raises_ends_the_run_with_its_error(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, kind: str
) -> None:
    # A plain iterable is read by the workers themselves, an async one by a producer:
    # either way the input's own error ends the run, and nothing is sent twice.
    def plain() -> Iterator[tuple[str, str, str]]:
        for number in range(5):
            yield (FROM, TO, f"m{number}")
        raise LookupError("the CSV reader failed")

    async def asynchronous() -> AsyncIterator[tuple[str, str, str]]:
        for message in plain():
            yield message

    source = plain() if kind == "plain" else asynchronous()
    yielded: list[SendResult] = []
    with pytest.raises(LookupError, match="CSV reader failed"):
        async with bulk_client.sms.send_many(source, concurrency=2) as run:
            async for result in run:
                yielded.append(result)  # noqa: PERF401 - a comprehension would keep none

    accepted = accepted_bodies(sandbox)
    assert set(accepted) <= {f"m{number}" for number in range(5)}
    assert all(count == 1 for count in accepted.values())
    assert all(result.ok for result in yielded)
    assert {result.message.body for result in yielded} <= set(accepted)


async def test_an_input_that_cannot_be_iterated_fails_the_first_step_and_nothing_else(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    class Unreadable:
        def __iter__(self) -> Iterator[tuple[str, str, str]]:
            raise OSError("the file is gone")

    run = bulk_client.sms.send_many(Unreadable())
    with pytest.raises(OSError, match="the file is gone"):
        await anext(run)
    with pytest.raises(StopAsyncIteration):  # closed, not half-started
        await anext(run)
    await run.aclose()
    assert sandbox.messages == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"concurrency": 0}, "concurrency"), ({"rate_limit": 0}, "rate_limit"),
     ({"rate_limit": -5.0}, "rate_limit")],
)  # fmt: skip
async def test_invalid_arguments_are_refused_at_the_call(
    bulk_client: AsyncVoipNumber, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        bulk_client.sms.send_many(messages(1), **arguments)  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_retries_are_the_clients_policy(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.unavailable(times=2))

    run = bulk_client.sms.send_many(messages(10), concurrency=1)
    await collect(run)

    assert run.summary.attempts == 12
    assert run.summary.retried == 2
    assert len(sandbox.messages) == 10


# --- the journal --------------------------------------------------------------------------


async def test_a_finished_run_resumed_sends_nothing_again(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "campaign.db"
    first = await collect(bulk_client.sms.send_many(messages(300), journal=journal))
    requests = len(sandbox.requests)

    run = bulk_client.sms.send_many(messages(300), journal=journal)
    again = await collect(run)

    assert len(sandbox.requests) == requests
    assert all(r.resumed and r.ok for r in again)
    assert {r.index: r.sent for r in again} == {r.index: r.sent for r in first}
    assert run.summary.already_sent == 300


async def test_a_journal_for_another_input_is_refused_before_anything_is_sent(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "campaign.db"
    await collect(bulk_client.sms.send_many(messages(50), journal=journal))
    requests = len(sandbox.requests)

    with pytest.raises(JournalMismatchError, match="message 0 differs"):
        await collect(bulk_client.sms.send_many(messages(60, prefix="other"), journal=journal))
    assert len(sandbox.requests) == requests


async def test_stopping_early_leaves_a_journal_that_resumes_without_loss_or_duplicates(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "campaign.db"
    sandbox.inject(Fault.slow(0.005, times=None))
    async with bulk_client.sms.send_many(messages(400), concurrency=10, journal=journal) as run:
        async for result in run:
            if result.index >= 100:
                break

    with contextlib.closing(sqlite3.connect(journal)) as db:
        outcomes = dict(db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
    assert "pending" not in outcomes  # every reserved message has a final word
    assert outcomes.get("sent", 0) == len(sandbox.messages)

    rest = await collect(bulk_client.sms.send_many(messages(400), concurrency=10, journal=journal))

    assert len(rest) == 400
    assert accepted_bodies(sandbox) == Counter(f"m{i}" for i in range(400))


KILLED_RUN = """
import asyncio, sys
from voipnumber_async import AsyncVoipNumber, RetryPolicy

async def main():
    async with AsyncVoipNumber(retry=RetryPolicy(initial_backoff=0.001)) as client:
        messages = (("+447445459147", "+447483866525", f"k{i}") for i in range(1500))
        async for result in client.sms.send_many(messages, concurrency=20, journal=sys.argv[1]):
            print(result.index, flush=True)

asyncio.run(main())
"""


async def test_a_killed_run_resumes_with_every_message_accepted_exactly_once(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "campaign.db"
    voipnumber_sandbox.inject(Fault.slow(0.01, times=None))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_RUN), str(journal)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, **voipnumber_sandbox.env()},
    )  # fmt: skip
    assert child.stdout is not None
    for printed, _ in enumerate(child.stdout, start=1):
        if printed == 300:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=30)
    child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    voipnumber_sandbox.clear_faults()
    sent_before = len(voipnumber_sandbox.messages)
    assert 300 <= sent_before < 1500

    # By default an interrupted message is reported for review, not sent again.
    review = tmp_path / "review.db"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(f"{journal}{suffix}"):  # noqa: ASYNC240 - a test's setup
            shutil.copy(f"{journal}{suffix}", f"{review}{suffix}")
    batch = [(FROM, TO, f"k{i}") for i in range(1500)]
    async with Sandbox() as elsewhere, AsyncVoipNumber(**elsewhere.client_settings()) as client:
        # (The rest of the input goes to another sandbox: this copy only shows the review.)
        reviewed = await collect(client.sms.send_many(batch, concurrency=20, journal=review))
        unknown = [r for r in reviewed if r.outcome == "unknown"]
        assert unknown, "a kill mid-run leaves messages whose outcome is unknown"
        assert all(r.resumed and isinstance(r.error, OutcomeUnknownError) for r in unknown)
        assert {m.body for m in elsewhere.messages}.isdisjoint(r.message.body for r in unknown)
    unknown_bodies = {r.message.body for r in unknown}

    # Opting in sends them again with their original keys: the service dedups.
    settings = voipnumber_sandbox.client_settings()
    async with AsyncVoipNumber(**settings, retry=FAST) as client:
        run = client.sms.send_many(batch, concurrency=20, journal=journal, resend_unknown=True)
        resumed = await collect(run)

    assert len(resumed) == 1500
    assert all(r.ok for r in resumed)
    assert accepted_bodies(voipnumber_sandbox) == Counter(f"k{i}" for i in range(1500))
    assert run.summary.already_sent + run.summary.sent == 1500
    assert unknown_bodies <= {r.message.body for r in resumed if not r.resumed}


# --- the sync twin ------------------------------------------------------------------------


def test_the_sync_client_sends_many_as_a_plain_iterator(voipnumber_sandbox: Sandbox) -> None:
    from voipnumber_sync import VoipNumber

    with VoipNumber(**voipnumber_sandbox.client_settings()) as client:
        with client.sms.send_many(messages(200), concurrency=10, ordered=True) as results:
            indexes = [result.index for result in results]
        summary = results.summary

    assert indexes == list(range(200))
    assert summary.sent == 200
    assert len(voipnumber_sandbox.messages) == 200


# --- the SQLite journal --------------------------------------------------------------------

CREATED = datetime(2024, 5, 20, 8, 28, 37, tzinfo=timezone.utc)


def sent_as(message: OutgoingMessage, **changes: object) -> SentMessage:
    plain = SentMessage(id="a1", status="queued", body=message.body, timestamp_s=1716193717,
                        created=CREATED, extra={})  # fmt: skip
    return attrs.evolve(plain, **changes)


async def sent_back(
    path: Path, batch: list[OutgoingMessage], sent: list[SentMessage]
) -> list[JournalEntry]:
    """What a second run's reservation reads back of `sent`, recorded by a first."""
    async with SqliteJournal(path) as journal:
        entries = await journal.reserve(0, batch)
        await journal.record([
            SendResult(index=i, message=m, sent=s, idempotency_key=e.idempotency_key)
            for i, (m, s, e) in enumerate(zip(batch, sent, entries, strict=True))
        ])  # fmt: skip
    async with SqliteJournal(path) as journal:
        return list(await journal.reserve(0, batch))


async def test_the_journal_gives_back_the_sent_message_whole(tmp_path: Path) -> None:
    batch = [OutgoingMessage(from_=FROM, to=TO, body="hi") for _ in range(2)]
    plain = sent_as(batch[0])
    unusual = sent_as(batch[1], id="b2", status="odd", body="hi, edited",
                      extra={"segments": 2, "tags": ["x"]})  # fmt: skip

    entries = await sent_back(tmp_path / "j.db", batch, [plain, unusual])

    assert [e.outcome for e in entries] == ["sent", "sent"]
    assert entries[0].sent == plain
    assert entries[1].sent == unusual  # its own body kept, where the answer's differed


@pytest.mark.parametrize(
    "changes",
    [{}, {"body": "edited"}, {"extra": {"segments": 2}}, {"timestamp_s": 2**70},
     {"timestamp_s": -(2**63)}, {"extra": {"note": "\x00\udfff", "big": 2**64}}],
    ids=["plain", "other body", "extra", "huge timestamp", "lowest timestamp", "odd extra"],
)  # fmt: skip
async def test_a_sent_message_reads_back_as_it_was_recorded(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    message = OutgoingMessage(from_=FROM, to=TO, body="hi")
    sent = sent_as(message, **changes)

    (entry,) = await sent_back(tmp_path / "j.db", [message], [sent])

    assert entry.sent == sent  # not rounded through a float, not cut at a NUL


async def test_any_text_the_service_or_an_error_holds_is_stored_escaped(tmp_path: Path) -> None:
    batch = [OutgoingMessage(from_=FROM, to=TO, body=f"m{i}") for i in range(2)]
    odd = sent_as(batch[0], id="a\x00b", status="qu\ud800eued")
    failure = MessageInvalidError("the service said \ud83d\x00 no", code="X\x00")
    path = tmp_path / "j.db"
    async with SqliteJournal(path) as journal:
        entries = await journal.reserve(0, batch)
        await journal.record([
            SendResult(index=0, message=batch[0], sent=odd,
                       idempotency_key=entries[0].idempotency_key),
            SendResult(index=1, message=batch[1], error=failure,
                       idempotency_key=entries[1].idempotency_key),
        ])  # fmt: skip
        again = await journal.reserve(0, batch)  # the file stays readable

    assert again[0].sent is not None
    assert (again[0].sent.id, again[0].sent.status) == ("a\\x00b", "qu\\ud800eued")
    assert (again[1].outcome, again[1].idempotency_key) == ("reserved", entries[1].idempotency_key)
    with contextlib.closing(sqlite3.connect(path)) as db:
        row = db.execute("SELECT outcome, error_class, error_code, error_message FROM messages"
                         " WHERE position = 1").fetchone()  # fmt: skip
    assert row == ("pending", "MessageInvalidError", "X\\x00",
                   "the service said \\ud83d\\x00 no")  # fmt: skip


async def test_a_journal_of_another_schema_is_refused_with_a_clear_error(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(journal)) as db, db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")

    with pytest.raises(ConfigurationError, match="another version of voipnumber"):
        await collect(bulk_client.sms.send_many(messages(5), journal=journal))
    assert sandbox.requests == []


async def test_a_file_that_is_not_a_journal_is_refused_with_a_clear_error(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "campaign.csv"
    journal.write_text("to,body\n+447483866525,hello\n" * 100)

    with pytest.raises(ConfigurationError, match=r"cannot use .* as a journal"):
        await collect(bulk_client.sms.send_many(messages(5), journal=journal))
    assert sandbox.requests == []


async def test_a_message_that_fails_validation_is_journaled_as_failed(
    bulk_client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    batch = [(FROM, TO, "ok"), (FROM, "+12", "too short"), (FROM, TO, "")]

    results = await collect(bulk_client.sms.send_many(batch, journal=journal))

    assert [r.outcome for r in sorted(results, key=lambda r: r.index)] == [
        "sent", "failed", "failed",
    ]  # fmt: skip
    with contextlib.closing(sqlite3.connect(journal)) as db:
        rows = db.execute("SELECT position, outcome, error_class FROM messages ORDER BY 1")
        assert list(rows) == [
            (0, "sent", None),
            (1, "failed", "InvalidRequestError"),
            (2, "failed", "InvalidRequestError"),
        ]
    assert sandbox.request_count == 1
