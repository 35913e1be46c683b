"""Whatever the service answers, a send ends in a SentMessage or a typed error.

A small aiohttp server stands in for a broken or hostile service: each test says
what it answers.
"""

from __future__ import annotations

import gzip
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from _support import FROM, TO, fixture_bytes
from aiohttp import web
from aiohttp.test_utils import TestServer

from voipnumber_async import (
    AsyncVoipNumber,
    OutcomeUnknownError,
    RetryPolicy,
    UnexpectedResponseError,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Service:
    """A service whose every answer is `handler`'s; it counts the requests it got."""

    def __init__(self) -> None:
        self.requests = 0
        self.handler: Handler = self.ok

    async def ok(self, request: web.Request) -> web.StreamResponse:
        return web.Response(body=fixture_bytes("send-ok.json"), content_type="application/json")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        await request.read()
        return await self.handler(request)


@pytest.fixture
async def service() -> AsyncIterator[tuple[Service, str]]:
    fake = Service()
    app = web.Application()
    app.router.add_post("/v1/sms/send", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        yield fake, str(server.make_url("")).rstrip("/")


def answering(status: int, body: bytes, **headers: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers=headers)

    return handler


HOSTILE_SUCCESSES = {
    "deep nesting": b"[" * 100_000,
    "deep nesting in an object": b'{"status": "OK", "result": ' + b"[" * 100_000,
    "a year of 20 digits": (
        b'{"status": "OK", "result": {"id": "a", "status": "queued", "body": "x", '
        b'"timestamp_s": 1, "created": "1 May 99999999999999999999 00:00:00"}}'
    ),
    "an hour of 20 digits": (
        b'{"status": "OK", "result": {"id": "a", "status": "queued", "body": "x", '
        b'"timestamp_s": 1, "created": "1 May 2024 99999999999999999999:00:00"}}'
    ),
    "an id of 5,000 digits": (
        b'{"status": "OK", "result": {"id": ' + b"9" * 5000 + b', "status": "queued", '
        b'"body": "x", "timestamp_s": 1, "created": "20 May 2024 08:28:37"}}'
    ),
    "not UTF-8": b"\xff\xfe\x00garbage",
    "empty": b"",
}


@pytest.mark.parametrize("body", HOSTILE_SUCCESSES.values(), ids=HOSTILE_SUCCESSES.keys())
async def test_a_2xx_that_cannot_be_read_is_an_unexpected_response_that_may_have_been_sent(
    service: tuple[Service, str], body: bytes
) -> None:
    fake, url = service
    fake.handler = answering(200, body)
    async with AsyncVoipNumber("AC1", "token", base_url=url) as client:
        with pytest.raises(UnexpectedResponseError) as caught:
            await client.sms.send(FROM, TO, "hi")

    error = caught.value
    assert (error.http_status, error.may_have_been_sent, error.attempts) == (200, True, 1)
    assert error.idempotency_key is not None
    assert fake.requests == 1  # never retried: it may have been sent


@pytest.mark.parametrize(("status", "may_have_been_sent"), [(200, True), (500, True), (404, False)])
async def test_an_answer_over_the_size_cap_is_refused_while_reading(
    service: tuple[Service, str], status: int, may_have_been_sent: bool
) -> None:
    fake, url = service

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status)  # chunked: no length to check first
        await response.prepare(request)
        for _ in range(64):  # 4 MiB, well over the 1 MiB cap
            await response.write(b" " * 65536)
        return response

    fake.handler = endless
    async with AsyncVoipNumber("AC1", "token", base_url=url, max_retries=0) as client:
        with pytest.raises(UnexpectedResponseError, match="larger than") as caught:
            await client.sms.send(FROM, TO, "hi")

    assert caught.value.http_status == status
    assert caught.value.may_have_been_sent is may_have_been_sent


async def test_a_declared_length_over_the_cap_and_a_gzip_bomb_are_refused(
    service: tuple[Service, str],
) -> None:
    fake, url = service
    async with AsyncVoipNumber("AC1", "token", base_url=url) as client:
        fake.handler = answering(200, b" " * (2 * 1024 * 1024))
        with pytest.raises(UnexpectedResponseError, match="larger than"):
            await client.sms.send(FROM, TO, "declared")
        bomb = gzip.compress(b" " * (8 * 1024 * 1024))  # 8 KiB on the wire
        fake.handler = answering(200, bomb, **{"Content-Encoding": "gzip"})
        with pytest.raises(UnexpectedResponseError, match="larger than"):
            await client.sms.send(FROM, TO, "bomb")


async def test_a_gzip_answer_within_the_cap_is_read(service: tuple[Service, str]) -> None:
    fake, url = service
    fake.handler = answering(
        200, gzip.compress(fixture_bytes("send-ok.json")), **{"Content-Encoding": "gzip"}
    )
    async with AsyncVoipNumber("AC1", "token", base_url=url) as client:
        message = await client.sms.send(FROM, TO, "hi")

    assert message.status == "queued"


async def test_an_unreadable_500_is_outcome_unknown(service: tuple[Service, str]) -> None:
    fake, url = service
    fake.handler = answering(500, b"[" * 100_000)
    async with AsyncVoipNumber("AC1", "token", base_url=url) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sms.send(FROM, TO, "hi")

    assert caught.value.may_have_been_sent is True


async def test_in_bulk_a_hostile_answer_is_one_result_and_journaled_unknown_never_unsent(
    service: tuple[Service, str], tmp_path: Path
) -> None:
    fake, url = service
    journal = tmp_path / "run.db"

    async def every_tenth_hostile(request: web.Request) -> web.StreamResponse:
        if fake.requests % 10 == 0:
            return web.Response(body=b"[" * 100_000)
        return await fake.ok(request)

    fake.handler = every_tenth_hostile
    policy = RetryPolicy(initial_backoff=0.001)
    messages = [(FROM, TO, f"m{i}") for i in range(200)]
    async with AsyncVoipNumber("AC1", "token", base_url=url, retry=policy) as client:
        async with client.sms.send_many(messages, concurrency=10, journal=journal) as run:
            results = [result async for result in run]

        assert len(results) == 200
        hostile = [r for r in results if r.error is not None]
        assert len(hostile) == 20
        assert all(isinstance(r.error, UnexpectedResponseError) for r in hostile)
        assert all(r.outcome == "unknown" for r in hostile)
        with sqlite3.connect(journal) as db:
            outcomes = dict(db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
        db.close()
        assert outcomes == {"sent": 180, "unknown": 20}

        before = fake.requests
        resumed = [r async for r in client.sms.send_many(messages, journal=journal)]
        assert fake.requests == before  # a default resume sends none of them again
        assert sum(r.outcome == "unknown" for r in resumed) == 20
