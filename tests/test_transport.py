"""Seam 3, the transport: any object with `handle_async_request`, and `MockTransport`.

Everything above the transport (validation, retries, decoding, typed errors, pacing,
bulk) must behave through a mock exactly as it does over HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from _support import FAST_RETRIES, FROM, TO

from voipnumber_async import (
    APIConnectionError,
    AsyncTransport,
    AsyncVoipNumber,
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    SentMessage,
    ServiceUnavailableError,
    Timeout,
    TransportRequest,
    TransportResponse,
    UnexpectedResponseError,
)
from voipnumber_async.testing import MockResponse, MockTransport
from voipnumber_sync import VoipNumber

TOKEN = "tok_TRANSPORT_5d1c"
OK = {
    "status": "OK",
    "result": {
        "status": "queued",
        "body": "Thank you",
        "timestamp_s": 1716193717,
        "created": "20 May 2024 08:28:37",
        "id": "feefcc83-d6ae-4580-b4dc-6ee16b37ff04",
    },
}


def client_on(transport: AsyncTransport, **options: Any) -> AsyncVoipNumber:
    options.setdefault("retry", FAST_RETRIES)
    return AsyncVoipNumber("AC1", TOKEN, transport=transport, **options)


async def test_the_handler_sees_the_request_the_service_would_receive() -> None:
    transport = MockTransport(lambda request: MockResponse(200, json=OK))
    async with client_on(transport, base_url="https://api.example.test") as client:
        message = await client.sms.send(FROM, TO, "Thank you")

    (request,) = transport.requests
    assert request.method == "POST"
    assert request.url == "https://api.example.test/v1/sms/send"
    assert request.json() == {"from": FROM, "to": TO, "body": "Thank you"}
    assert isinstance(request.body, bytes)
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Account-Id"] == "AC1"
    assert request.headers["Content-Type"] == "application/json"
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4
    assert request.timeout == Timeout()
    assert message == SentMessage(
        id="feefcc83-d6ae-4580-b4dc-6ee16b37ff04",
        status="queued",
        body="Thank you",
        timestamp_s=1716193717,
        created=message.created,
    )
    assert message.created.isoformat() == "2024-05-20T08:28:37+00:00"


async def test_an_async_handler_is_awaited() -> None:
    seen: list[str] = []

    async def handler(request: TransportRequest) -> TransportResponse:
        await asyncio.sleep(0)
        seen.append(request.json()["to"])
        return MockResponse.queued(request)

    async with client_on(MockTransport(handler)) as client:
        message = await client.sms.send(FROM, TO, "async")

    assert seen == [TO]
    assert (message.status, message.body) == ("queued", "async")


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        ("USER_ACCOUNT_MISSING", AuthenticationError),
        ("API_TOKEN_MISSING", AuthenticationError),
        ("USER_NOT_FOUND", AuthenticationError),
        ("API_TOKEN_INVALID", AuthenticationError),
        ("NUMBER_NOT_FOUND", NumberNotFoundError),
        ("NUMBER_OWNERSHIP", NumberOwnershipError),
        ("MESSAGE_INVALID", MessageInvalidError),
    ],
)
async def test_documented_error_codes_raise_their_class_and_are_not_retried(
    code: str, error_class: type[Exception]
) -> None:
    transport = MockTransport(lambda request: MockResponse.error(code))
    async with client_on(transport) as client:
        with pytest.raises(error_class) as caught:
            await client.sms.send(FROM, TO, "hi")

    assert type(caught.value) is error_class
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert len(transport.requests) == 1
    assert caught.value.attempts == 1  # type: ignore[attr-defined]


def test_an_unknown_error_code_for_mock_response_error_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="NUMBER_OWNERSHIP"):
        MockResponse.error("NO_SUCH_CODE")


async def test_a_dropped_connection_is_outcome_unknown_and_not_retried_by_default() -> None:
    transport = MockTransport(lambda request: MockTransport.drop())
    async with client_on(transport) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sms.send(FROM, TO, "hi")

    assert caught.value.may_have_been_sent is True
    assert len(transport.requests) == 1
    assert caught.value.idempotency_key == transport.requests[0].headers["Idempotency-Key"]


async def test_an_opted_in_retry_of_a_dropped_send_carries_the_same_key() -> None:
    answers = iter([MockTransport.drop, lambda: MockResponse(200, json=OK)])

    def handler(request: TransportRequest) -> TransportResponse:
        return next(answers)()

    transport = MockTransport(handler)
    policy = RetryPolicy(initial_backoff=0.001, max_backoff=0.005, retry_outcome_unknown=True)
    async with client_on(transport, retry=policy) as client:
        await client.sms.send(FROM, TO, "hi")

    first, second = (request.headers["Idempotency-Key"] for request in transport.requests)
    assert first == second


async def test_a_refused_connection_is_retried_then_raised_with_its_attempts() -> None:
    transport = MockTransport(lambda request: MockTransport.refuse())
    async with client_on(transport, max_retries=2) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.sms.send(FROM, TO, "hi")

    assert caught.value.may_have_been_sent is False
    assert caught.value.attempts == 3
    assert len(transport.requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in transport.requests}) == 1


async def test_retry_after_is_read_from_headers_in_any_case() -> None:
    answers = iter([MockResponse(503, headers={"retry-after": "0"}), MockResponse(200, json=OK)])
    waits: list[float] = []
    policy = RetryPolicy(initial_backoff=5, max_backoff=5, on_retry=lambda e: waits.append(e.wait))
    transport = MockTransport(lambda request: next(answers))
    async with client_on(transport, retry=policy) as client:
        await client.sms.send(FROM, TO, "hi")

    assert waits == [0.0]  # the service's Retry-After, not the 5 s backoff
    assert len(transport.requests) == 2


async def test_a_429_past_max_retry_after_is_raised_at_once_with_its_retry_after() -> None:
    transport = MockTransport(lambda request: MockResponse(429, headers={"Retry-After": "120"}))
    async with client_on(transport) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.sms.send(FROM, TO, "hi")

    assert caught.value.retry_after == 120
    assert len(transport.requests) == 1


async def test_a_503_without_json_is_retried_then_raised() -> None:
    transport = MockTransport(lambda request: MockResponse(503, body="<html>down</html>"))
    async with client_on(transport, max_retries=1) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.sms.send(FROM, TO, "hi")

    assert len(transport.requests) == 2


async def test_an_answer_over_the_cap_from_any_transport_is_unexpected() -> None:
    transport = MockTransport(lambda request: MockResponse(200, body=b" " * (1024 * 1024 + 1)))
    async with client_on(transport) as client:
        with pytest.raises(UnexpectedResponseError, match="larger than"):
            await client.sms.send(FROM, TO, "hi")


async def test_invalid_input_is_refused_before_the_transport() -> None:
    transport = MockTransport(MockResponse.queued)
    async with client_on(transport) as client:
        with pytest.raises(InvalidRequestError):
            await client.sms.send(FROM, "07483866525", "hi")

    assert transport.requests == []


async def test_a_transport_bug_reaches_the_caller_unchanged_and_is_not_retried() -> None:
    def handler(request: TransportRequest) -> TransportResponse:
        raise KeyError("a bug in the transport")

    transport = MockTransport(handler)
    async with client_on(transport, max_retries=3) as client:
        with pytest.raises(KeyError, match="a bug in the transport"):
            await client.sms.send(FROM, TO, "hi")

    assert len(transport.requests) == 1


async def test_a_handler_returning_something_else_gets_a_clear_type_error() -> None:
    transport = MockTransport(lambda request: {"status": "OK"})  # type: ignore[arg-type, return-value]
    async with client_on(transport) as client:
        with pytest.raises(TypeError, match="return a MockResponse"):
            await client.sms.send(FROM, TO, "hi")


def test_mock_transport_refuses_a_handler_that_is_not_callable() -> None:
    with pytest.raises(TypeError, match="handler function"):
        MockTransport(MockResponse(200))  # type: ignore[arg-type]


async def test_any_object_with_the_one_method_is_a_transport_and_is_closed_with_the_client() -> (
    None
):
    class Recording:
        def __init__(self) -> None:
            self.closed = 0

        async def handle_async_request(self, request: TransportRequest) -> TransportResponse:
            return TransportResponse(200, {"Content-Type": "application/json"}, request.body)

        async def aclose(self) -> None:
            self.closed += 1

    transport = Recording()
    client = client_on(transport)
    copy = client.with_options(timeout=5)
    with pytest.raises(UnexpectedResponseError):  # our own request is not an answer
        await copy.sms.send(FROM, TO, "hi")
    await copy.aclose()
    assert transport.closed == 0  # a copy does not close what it shares
    await client.aclose()
    assert transport.closed == 1


def test_an_object_without_the_method_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="handle_async_request") as caught:
        AsyncVoipNumber("AC1", TOKEN, transport=object())  # type: ignore[arg-type]

    assert caught.value.field == "transport"


async def test_at_most_max_connections_requests_are_in_the_transport_at_once() -> None:
    in_flight = peak = 0
    release, three_in = asyncio.Event(), asyncio.Event()

    async def handler(request: TransportRequest) -> TransportResponse:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            three_in.set()
        await release.wait()
        in_flight -= 1
        return MockResponse.queued(request)

    transport = MockTransport(handler)
    async with client_on(transport, max_connections=3) as client:
        sends = [asyncio.ensure_future(client.sms.send(FROM, TO, f"{n}")) for n in range(10)]
        await three_in.wait()
        for _ in range(20):  # give the other seven every chance to get in
            await asyncio.sleep(0)
        assert peak == 3
        release.set()
        messages = await asyncio.gather(*sends)

    assert sorted(m.body for m in messages) == sorted(f"{n}" for n in range(10))
    assert peak == 3


async def test_send_many_through_a_mock_sends_each_message_once_with_its_own_key() -> None:
    transport = MockTransport(MockResponse.queued)
    messages = [(FROM, TO, f"message {n}") for n in range(200)]
    async with (
        client_on(transport) as client,
        client.sms.send_many(messages, concurrency=20) as results,
    ):
        outcomes = [result async for result in results]

    assert sorted(r.index for r in outcomes if r.sent) == list(range(200))
    assert sorted(r.json()["body"] for r in transport.requests) == sorted(m[2] for m in messages)
    assert len({r.headers["Idempotency-Key"] for r in transport.requests}) == 200


def test_the_sync_client_takes_a_mock_transport() -> None:
    transport = MockTransport(MockResponse.queued)
    with VoipNumber("AC1", TOKEN, transport=transport) as client:
        message = client.sms.send(FROM, TO, "blocking")
    refusing = MockTransport(lambda request: MockResponse.error("NUMBER_OWNERSHIP"))
    with (
        VoipNumber("AC1", TOKEN, transport=refusing) as client,
        pytest.raises(NumberOwnershipError),
    ):
        client.sms.send(FROM, TO, "not mine")

    assert message.body == "blocking"
    assert len(transport.requests) == 1
    assert len(refusing.requests) == 1


def test_no_repr_of_a_request_or_answer_shows_the_token_or_the_body() -> None:
    request = TransportRequest(
        "POST",
        "https://api.example.test/v1/sms/send",
        headers={"Authorization": f"Bearer {TOKEN}"},
        body=b'{"body": "a private text"}',
        timeout=Timeout(),
    )
    answer = MockResponse(200, json={"body": "a private text"})

    for shown in (repr(request), repr(answer), str(request)):
        assert TOKEN not in shown
        assert "private" not in shown


async def test_a_send_whose_earlier_attempt_may_have_gone_ends_unknown_not_failed() -> None:
    # Attempt 1 is dropped after sending (it may have been processed); attempt 2 is
    # refused before sending. The message's outcome is unknown, not "nothing was sent".
    calls: list[str] = []

    def handler(request: Any) -> MockResponse:
        calls.append(request.headers["Idempotency-Key"])
        if len(calls) == 1:
            MockTransport.drop()
        MockTransport.refuse()

    policy = RetryPolicy(retry_outcome_unknown=True, max_retries=1, initial_backoff=0.001)
    async with AsyncVoipNumber("AC1", "token", transport=MockTransport(handler), retry=policy) as c:
        with pytest.raises(OutcomeUnknownError, match="earlier attempt") as caught:
            await c.sms.send(FROM, TO, "x")

    assert caught.value.may_have_been_sent is True
    assert caught.value.attempts == 2
    assert caught.value.idempotency_key == calls[0] == calls[1]


async def test_a_body_holding_half_a_character_is_refused_before_sending() -> None:
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        with pytest.raises(InvalidRequestError, match="lone surrogate") as caught:
            await client.sms.send(FROM, TO, "thanks \ud83d")

    assert caught.value.field == "body"
    assert transport.requests == []
