"""Stopping a bulk run is honest: nothing more is sent, every message taken has a result.

Only a request already on the wire may finish; a worker waiting for its rate turn, a
backoff or a 429 pause sends nothing more, and its message is journaled as not sent,
so that a resume sends exactly the rest.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    OutgoingMessage,
    RetryPolicy,
    RunStoppedError,
    SendResult,
    SqliteJournal,
    TransportRequest,
)
from voipnumber_async.sandbox import Fault, Sandbox
from voipnumber_async.testing import MockResponse, MockTransport


def messages(count: int) -> Iterator[OutgoingMessage]:
    return (OutgoingMessage(from_=FROM, to=TO, body=f"m{i}") for i in range(count))


async def until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`, polling; a generous bound turns a hang into a failure."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def journal_outcomes(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
    finally:
        db.close()


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[AsyncVoipNumber]:
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.005)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as running:
        yield running


def check_honest(results: list[SendResult], sandbox: Sandbox) -> None:
    """One result per message taken; what was accepted is what says sent; not_sent means it."""
    assert sorted(r.index for r in results) == list(range(len(results)))
    accepted = Counter(r.json()["body"] for r in sandbox.requests if r.status == 200)
    assert accepted == Counter(r.message.body for r in results if r.outcome == "sent")
    refused_only = {429, 502, 503}  # answers that say the message was not processed
    for result in results:
        if result.outcome == "not_sent":
            assert isinstance(result.error, RunStoppedError)
            assert result.error.may_have_been_sent is False
            answers = {
                r.status for r in sandbox.requests if r.json()["body"] == result.message.body
            }
            assert answers <= refused_only


@pytest.mark.parametrize("journaled", [False, True], ids=["no journal", "journal"])
async def test_a_run_stopped_waiting_for_its_rate_turns_sends_nothing_more(
    client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path, journaled: bool
) -> None:
    journal = tmp_path / "run.db" if journaled else None
    run = client.sms.send_many(messages(2000), concurrency=10, rate_limit=20.0, journal=journal)
    results = []
    async with run:
        async for result in run:
            results.append(result)
            if len(results) == 3:
                run.stop()

    check_honest(results, sandbox)
    not_sent = [r for r in results if r.outcome == "not_sent"]
    assert len(not_sent) >= 5  # the waiting workers' messages, and those read ahead
    assert run.summary.not_sent == len(not_sent)
    assert run.summary.results == len(results) < 2000  # the input is read no further
    if journal is not None:
        outcomes = journal_outcomes(journal)
        assert "pending" not in outcomes and "unknown" not in outcomes
        assert outcomes.get("unsent", 0) <= len(not_sent)  # those not yet reserved: no row

        rest = [r async for r in client.sms.send_many(messages(2000), journal=journal)]
        assert len(rest) == 2000
        assert Counter(m.body for m in sandbox.messages) == Counter(f"m{i}" for i in range(2000))


async def test_a_run_stopped_during_a_backoff_or_a_429_pause_sends_nothing_more(
    sandbox: Sandbox,
) -> None:
    patient = RetryPolicy(max_retry_after=60, deadline=None)
    # The first request waits 30 s to retry its 503; the second's 429 pauses everyone.
    sandbox.inject(
        Fault.unavailable(retry_after=30, times=1), Fault.rate_limited(retry_after=30, times=1)
    )
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=patient) as client:
        run = client.sms.send_many(messages(50), concurrency=5)
        async with run:
            iterating = asyncio.ensure_future(run.__anext__())
            await until(lambda: client._pacer.paused_for() > 0)  # type: ignore[attr-defined]
            requested = len(sandbox.requests)
            run.stop()
            results = [await iterating] + [r async for r in run]

    assert len(sandbox.requests) == requested  # nothing after the stop
    check_honest(results, sandbox)
    refused = {r.json()["body"] for r in sandbox.requests if r.status in (429, 503)}
    outcomes = {r.message.body: r.outcome for r in results}
    assert len(refused) == 2
    assert all(outcomes[body] == "not_sent" for body in refused)  # in a backoff, in a pause
    assert sum(o == "not_sent" for o in outcomes.values()) > 2  # and those never tried


async def test_cancelling_the_iterating_task_journals_the_untried_as_unsent(
    client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path
) -> None:
    journal = tmp_path / "run.db"
    seen = asyncio.Event()

    async def send_all() -> None:
        async with client.sms.send_many(
            messages(300), concurrency=10, rate_limit=40.0, journal=journal
        ) as run:
            async for _ in run:
                seen.set()

    task = asyncio.ensure_future(send_all())
    await seen.wait()
    task.cancel()  # what asyncio.run does with Ctrl-C
    with pytest.raises(asyncio.CancelledError):
        await task

    outcomes = journal_outcomes(journal)
    requested = len(sandbox.requests)
    assert outcomes.get("sent", 0) + outcomes.get("unknown", 0) == requested
    assert "pending" not in outcomes
    assert outcomes.get("unsent", 0) > 0

    rest = [r async for r in client.sms.send_many(messages(300), journal=journal)]
    assert sum(r.resumed for r in rest) == outcomes.get("sent", 0) + outcomes.get("unknown", 0)
    assert Counter(m.body for m in sandbox.messages) == Counter(f"m{i}" for i in range(300))


async def test_a_reservation_is_committed_before_its_messages_are_sent(
    client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held: list[asyncio.Future[None]] = []
    reserve = SqliteJournal.reserve

    async def held_reserve(self: SqliteJournal, *args: Any, **kwargs: Any) -> Any:
        written = await reserve(self, *args, **kwargs)
        gate = asyncio.get_running_loop().create_future()
        held.append(gate)
        await gate
        return written

    monkeypatch.setattr(SqliteJournal, "reserve", held_reserve)
    run = client.sms.send_many(messages(10), concurrency=5, journal=tmp_path / "run.db")
    async with run:
        first = asyncio.ensure_future(run.__anext__())
        await until(lambda: bool(held))
        for _ in range(20):  # the workers had every chance to send
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert sandbox.request_count == 0  # the reservation is not committed yet
        held[0].set_result(None)
        results = [await first] + [r async for r in run]

    assert len(results) == 10 and all(r.ok for r in results)
    assert sandbox.request_count == 10


async def test_stop_before_the_run_starts_ends_it_with_nothing_sent(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    run = client.sms.send_many(messages(10))
    run.stop()

    assert [r async for r in run] == []
    assert sandbox.request_count == 0


async def test_requests_on_the_wire_when_stopped_are_let_finish(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.slow(0.5, times=3))
    run = client.sms.send_many(messages(20), concurrency=3)
    async with run:
        first = asyncio.ensure_future(run.__anext__())
        await until(lambda: sandbox.in_flight == 3)
        run.stop()
        results = [await first] + [r async for r in run]

    outcomes = {r.index: r.outcome for r in results}
    assert [outcomes[i] for i in range(3)] == ["sent", "sent", "sent"]  # not cut off
    assert sandbox.request_count == 3
    check_honest(results, sandbox)


async def test_stop_while_the_run_opens_its_journal_stops_it_once_started(
    client: AsyncVoipNumber, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = client.sms.send_many(messages(50), journal=tmp_path / "run.db")
    opening = SqliteJournal.open

    async def open_and_stop(path: Path) -> SqliteJournal:
        run.stop()  # as a signal handler would, while the start awaits the journal
        return await opening(path)

    monkeypatch.setattr(SqliteJournal, "open", open_and_stop)
    results = [r async for r in run]

    assert sandbox.request_count == 0
    assert all(r.outcome == "not_sent" for r in results)


async def test_a_worker_let_finish_on_the_wire_takes_no_other_job_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stop lets the request of "m3" finish, then the run must end: its worker may
    # not go back for another job. With the drain made far longer than the wait_for
    # below, a worker that did (and waited for one) fails the test instead of ending
    # the run after the drain.
    monkeypatch.setattr("voipnumber_async._bulk.run.DRAIN_TIMEOUT_S", 40.0)
    on_the_wire = asyncio.Event()
    release = asyncio.Event()

    async def handler(request: TransportRequest) -> MockResponse:
        if request.json()["body"] == "m3":
            on_the_wire.set()
            await release.wait()
        return MockResponse.queued(request)

    transport = MockTransport(handler)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        run = client.sms.send_many(messages(10_000), concurrency=2)

        async def consume() -> list[SendResult]:
            async with run:
                return [result async for result in run]

        consuming = asyncio.create_task(consume())
        await on_the_wire.wait()
        run.stop()
        release.set()
        results = await asyncio.wait_for(consuming, timeout=20)

    by_body = {result.message.body: result for result in results}
    assert by_body["m3"].ok  # let finish, and answered
    sent = Counter(request.json()["body"] for request in transport.requests)
    assert all(count == 1 for count in sent.values())
    assert {r.message.body for r in results if r.ok} == set(sent)


async def test_the_watch_says_on_the_wire_only_while_the_transport_has_the_request() -> None:
    from voipnumber_async._sender import SendWatch

    watch = SendWatch()
    seen: list[bool] = []

    def handler(request: TransportRequest) -> MockResponse:
        seen.append(watch.on_wire)
        return MockResponse.queued(request)

    async with AsyncVoipNumber("AC1", "token", transport=MockTransport(handler)) as client:
        await client._sender.send(b'{"from": "x"}', "key-1", watch=watch)

    assert seen == [True]
    assert watch.on_wire is False
    assert watch.attempts == 1
