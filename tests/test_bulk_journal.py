"""The `Journal` protocol: any object with `reserve` and `record` makes a run resumable.

What the protocol promises is tested with journals of the test's own, over a
`MockTransport`: nothing is sent before its reservation is committed, every message is
sent with the key its journal chose, a resumed run sends nothing twice, and a journal
of another input is refused before anything is sent.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    Journal,
    JournalEntry,
    JournalMismatchError,
    OutgoingMessage,
    SendResult,
    SentMessage,
    SqliteJournal,
    TransportRequest,
)
from voipnumber_async.testing import MockResponse, MockTransport


@attrs.define
class Held:
    message: OutgoingMessage
    key: str
    outcome: str = "reserved"
    sent: SentMessage | None = None


class MemoryJournal:
    """A journal in a dict, with keys derived from the campaign and the position."""

    def __init__(self, campaign: str = "spring") -> None:
        self.campaign = campaign
        self.held: dict[int, Held] = {}
        self.reserve_calls = 0

    async def reserve(
        self, start: int, messages: Sequence[OutgoingMessage], *, resend_unknown: bool = False
    ) -> list[JournalEntry]:
        self.reserve_calls += 1
        for position, message in enumerate(messages, start):
            if position in self.held and self.held[position].message != message:
                raise JournalMismatchError(f"message {position} differs", field="journal")
        entries = []
        for position, message in enumerate(messages, start):
            held = self.held.setdefault(
                position, Held(message, message.idempotency_key or f"{self.campaign}-{position}")
            )
            if held.outcome == "sent":
                entries.append(JournalEntry(position=position, idempotency_key=held.key,
                                            outcome="sent", sent=held.sent))  # fmt: skip
                continue
            if held.outcome in ("pending", "unknown") and not resend_unknown:
                entries.append(JournalEntry(position=position, idempotency_key=held.key,
                                            outcome="unknown"))  # fmt: skip
                continue
            held.outcome = "pending"
            entries.append(JournalEntry(position=position, idempotency_key=held.key,
                                        outcome="reserved"))  # fmt: skip
        return entries

    async def record(self, results: Sequence[SendResult]) -> None:
        for result in results:
            held = self.held[result.index]
            held.outcome = (
                "reserved" if result.outcome in ("failed", "not_sent") else result.outcome
            )
            held.sent = result.sent

    def committed_keys(self) -> set[str]:
        return {held.key for held in self.held.values() if held.outcome != "reserved"}


def messages(count: int, prefix: str = "m") -> Iterator[OutgoingMessage]:
    return (OutgoingMessage(from_=FROM, to=TO, body=f"{prefix}{i}") for i in range(count))


def bodies(transport: MockTransport) -> Counter[str]:
    return Counter(request.json()["body"] for request in transport.requests)


def test_a_journal_of_ones_own_is_a_journal_and_sqlite_is_one_too() -> None:
    assert isinstance(MemoryJournal(), Journal)
    assert isinstance(SqliteJournal("unused.db"), Journal)


async def test_nothing_is_sent_until_its_reservation_is_committed() -> None:
    committed = asyncio.Event()
    entered = asyncio.Event()

    class HeldOpen(MemoryJournal):
        async def reserve(self, *args: object, **kwargs: object) -> list[JournalEntry]:
            entered.set()
            await committed.wait()  # the commit is under way until the test says
            return await super().reserve(*args, **kwargs)  # type: ignore[arg-type]

    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "tok", transport=transport) as client:
        run = client.sms.send_many(messages(50), concurrency=10, journal=HeldOpen())
        async with run:
            first = asyncio.ensure_future(anext(run))
            await entered.wait()
            for _ in range(100):  # every worker has had its turn many times over
                await asyncio.sleep(0)
            assert transport.requests == []
            committed.set()
            results = [await first] + [result async for result in run]

    assert len(transport.requests) == 50
    assert sorted(r.index for r in results) == list(range(50))


async def test_every_request_carries_a_key_its_journal_had_committed() -> None:
    journal = MemoryJournal()
    sent_uncommitted: list[str] = []

    def handler(request: TransportRequest) -> MockResponse:
        key = request.headers["Idempotency-Key"]
        if key not in journal.committed_keys():
            sent_uncommitted.append(key)
        return MockResponse.queued(request)

    transport = MockTransport(handler)
    async with AsyncVoipNumber("AC1", "tok", transport=transport) as client:
        results = [r async for r in client.sms.send_many(messages(300), journal=journal)]

    assert sent_uncommitted == []
    assert journal.reserve_calls > 1  # in batches, ahead of the workers
    keys = [request.headers["Idempotency-Key"] for request in transport.requests]
    assert sorted(keys) == sorted(f"spring-{i}" for i in range(300))  # the journal's keys
    assert {r.idempotency_key for r in results} == set(keys)


async def test_a_stopped_run_resumed_with_the_same_journal_sends_nothing_twice() -> None:
    journal = MemoryJournal()
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "tok", transport=transport) as client:
        async with client.sms.send_many(messages(2000), concurrency=5, journal=journal) as run:
            async for result in run:
                if result.index >= 30:
                    run.stop()
        first = run.summary
        assert 0 < first.sent < 2000  # the window kept the run from reading everything

        resumed = client.sms.send_many(messages(2000), concurrency=5, journal=journal)
        results = [result async for result in resumed]

    assert len(results) == 2000 and all(r.ok for r in results)
    assert resumed.summary.already_sent == first.sent
    assert resumed.summary.sent == 2000 - first.sent
    assert bodies(transport) == Counter(f"m{i}" for i in range(2000))  # each exactly once


async def test_a_journal_of_another_input_is_refused_before_anything_is_sent() -> None:
    journal = MemoryJournal()
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "tok", transport=transport) as client:
        await _drain(client.sms.send_many(messages(20), journal=journal))
        sent = len(transport.requests)

        with pytest.raises(JournalMismatchError, match="message 0 differs"):
            await _drain(client.sms.send_many(messages(20, prefix="other"), journal=journal))

    assert len(transport.requests) == sent == 20


async def test_a_journal_object_is_left_open_for_its_owner(tmp_path: object) -> None:
    transport = MockTransport(MockResponse.queued)
    path = f"{tmp_path}/campaign.db"
    async with (
        AsyncVoipNumber("AC1", "tok", transport=transport) as client,
        SqliteJournal(path) as journal,
    ):
        await _drain(client.sms.send_many(messages(10), journal=journal))
        again = client.sms.send_many(messages(10), journal=journal)  # the same object, reused
        results = [result async for result in again]

    assert all(r.resumed for r in results)
    assert len(transport.requests) == 10


async def test_something_that_is_no_journal_is_refused_at_the_call() -> None:
    async with AsyncVoipNumber(
        "AC1", "tok", transport=MockTransport(MockResponse.queued)
    ) as client:
        with pytest.raises(Exception, match="journal must be a path or a Journal") as caught:
            client.sms.send_many(messages(1), journal=42)  # type: ignore[arg-type]
    assert getattr(caught.value, "field", None) == "journal"


async def _drain(run: object) -> None:
    async for _ in run:  # type: ignore[attr-defined]
        pass


class SlowRecordJournal(MemoryJournal):
    """Takes its time to commit: a stop can land while a `record` is under way."""

    async def record(self, results: Sequence[SendResult]) -> None:
        await asyncio.sleep(0.05)
        await super().record(results)


async def test_a_stop_during_a_record_loses_no_outcome() -> None:
    journal = SlowRecordJournal()
    transport = MockTransport(MockResponse.queued)
    async with (
        AsyncVoipNumber("AC1", "token", transport=transport) as client,
        client.sms.send_many(messages(20), journal=journal) as run,
    ):
        taken = 0
        async for _ in run:
            taken += 1
            if taken == 20:
                break  # leaves the run while the periodic record may be committing

    assert len(transport.requests) == 20
    assert {held.outcome for held in journal.held.values()} == {"sent"}


class BrokenRecordJournal(MemoryJournal):
    async def record(self, results: Sequence[SendResult]) -> None:
        raise ConnectionError("the journal's store is down")


async def test_a_journal_that_cannot_record_ends_the_run_instead_of_sending_on() -> None:
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        run = client.sms.send_many(messages(20_000), journal=BrokenRecordJournal(), concurrency=2)
        with pytest.raises(ConnectionError, match="store is down"):
            await asyncio.wait_for(_drain(run), timeout=30)

    # Stopped at the first failed commit (every 0.2 s, or 512 results), not after the
    # whole input went out unjournaled.
    assert len(transport.requests) < 5_000


class FailingPacer:
    """A pacer over a store that goes away: its second turn raises."""

    def __init__(self) -> None:
        self.turns = 0

    def acquire(self, *, max_wait: float | None = None) -> None:
        self.turns += 1
        if self.turns == 2:
            raise ConnectionError("the pacer's store is down")

    def rate_limited(self, retry_after: float | None) -> None:
        pass


async def test_a_pacer_that_fails_ends_the_run_with_its_error_not_a_hang() -> None:
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        run = client.sms.send_many(messages(100), rate_limit=FailingPacer(), concurrency=1)
        with pytest.raises(ConnectionError, match="store is down"):
            await asyncio.wait_for(_drain(run), timeout=30)

    assert len(transport.requests) == 1
    assert run.summary.sent == 1 and run.summary.not_sent >= 1


async def test_a_message_with_a_field_that_is_no_text_is_a_failed_result_with_a_journal(
    tmp_path: Path,
) -> None:
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        rows = [{"from_": FROM, "to": None, "body": "x"}, (FROM, TO, "fine")]
        run = client.sms.send_many(rows, journal=tmp_path / "campaign.db")  # type: ignore[arg-type]
        results = [r async for r in run]

    assert sorted(r.outcome for r in results) == ["failed", "sent"]
    assert len(transport.requests) == 1
