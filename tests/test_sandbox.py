"""The sandbox implements the contract: tested with raw HTTP, not through the client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from _support import FROM, TO

from voipnumber_async import APIError, AsyncVoipNumber
from voipnumber_async.sandbox import (
    DEMO_ACCOUNT_ID,
    DEMO_API_TOKEN,
    FAULT_KINDS,
    OTHER_ACCOUNT_NUMBER,
    Fault,
    Sandbox,
)

GOOD_HEADERS = {"X-Account-Id": DEMO_ACCOUNT_ID, "Authorization": f"Bearer {DEMO_API_TOKEN}"}


async def post(sandbox: Sandbox, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sandbox.base_url}/v1/sms/send", data=data, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


MESSAGE = {"from": FROM, "to": TO, "body": "hi"}


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({"Authorization": f"Bearer {DEMO_API_TOKEN}"}, MESSAGE, 401, "USER_ACCOUNT_MISSING"),
        ({"X-Account-Id": DEMO_ACCOUNT_ID}, MESSAGE, 401, "API_TOKEN_MISSING"),
        ({**GOOD_HEADERS, "X-Account-Id": "nobody"}, MESSAGE, 401, "USER_NOT_FOUND"),
        ({**GOOD_HEADERS, "Authorization": "Bearer nope"}, MESSAGE, 401, "API_TOKEN_INVALID"),
        (GOOD_HEADERS, {**MESSAGE, "from": "+15005550006"}, 404, "NUMBER_NOT_FOUND"),
        (GOOD_HEADERS, {**MESSAGE, "from": OTHER_ACCOUNT_NUMBER}, 403, "NUMBER_OWNERSHIP"),
        (GOOD_HEADERS, {**MESSAGE, "body": ""}, 400, "MESSAGE_INVALID"),
        (GOOD_HEADERS, {**MESSAGE, "to": "not a number"}, 400, "MESSAGE_INVALID"),
        (GOOD_HEADERS, b"{not json", 400, "MESSAGE_INVALID"),
        (GOOD_HEADERS, ["a", "list"], 400, "MESSAGE_INVALID"),
        (GOOD_HEADERS, b"[" * 100_000, 400, "MESSAGE_INVALID"),  # not a RecursionError (500)
        (GOOD_HEADERS, b'{"from": "\xff"}', 400, "MESSAGE_INVALID"),  # not UTF-8
    ],
)
async def test_the_sandbox_answers_every_documented_code(
    sandbox: Sandbox, headers: dict[str, str], body: Any, status: int, code: str
) -> None:
    answer_status, answer = await post(sandbox, body, headers)

    assert answer_status == status
    assert answer["status"] == "ERROR"
    assert answer["error"]["code"] == code
    assert sandbox.messages == []


async def test_a_token_that_is_not_utf8_is_refused_as_invalid(sandbox: Sandbox) -> None:
    # aiohttp.ClientSession will not send such a header: write the request by hand.
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    body = json.dumps(MESSAGE).encode()
    writer.write(
        b"POST /v1/sms/send HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n"
        b"X-Account-Id: demo-account\r\nAuthorization: Bearer demo-\xff\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()

    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b"API_TOKEN_INVALID" in answer
    assert sandbox.messages == []


async def test_a_valid_request_is_accepted_in_the_documented_envelope(sandbox: Sandbox) -> None:
    status, answer = await post(sandbox, MESSAGE, GOOD_HEADERS)

    assert status == 200
    assert answer["status"] == "OK"
    assert set(answer["result"]) == {"status", "body", "timestamp_s", "created", "id"}
    assert answer["result"]["status"] == "queued"
    assert [m.id for m in sandbox.messages] == [answer["result"]["id"]]


async def test_a_reused_key_with_a_different_body_is_refused(sandbox: Sandbox) -> None:
    headers = {**GOOD_HEADERS, "Idempotency-Key": "k-1"}
    await post(sandbox, MESSAGE, headers)

    status, answer = await post(sandbox, {**MESSAGE, "body": "other"}, headers)

    assert status == 422
    assert answer["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert len(sandbox.messages) == 1


async def test_the_client_reports_a_reused_key_as_an_api_error(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    await client.sms.send(FROM, TO, "first", idempotency_key="k-2")

    with pytest.raises(APIError) as caught:
        await client.sms.send(FROM, TO, "second", idempotency_key="k-2")
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(sandbox.messages) == 1


async def test_keys_are_scoped_per_account(sandbox: Sandbox) -> None:
    other = {
        "X-Account-Id": "other-account",
        "Authorization": "Bearer other-token",
        "Idempotency-Key": "shared",
    }
    await post(sandbox, MESSAGE, {**GOOD_HEADERS, "Idempotency-Key": "shared"})
    await post(sandbox, {**MESSAGE, "from": OTHER_ACCOUNT_NUMBER}, other)

    assert len(sandbox.messages) == 2


async def test_peak_in_flight_counts_concurrent_requests(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.slow(0.2, times=10))

    await asyncio.gather(*(client.sms.send(FROM, TO, str(i)) for i in range(10)))

    assert sandbox.peak_in_flight == 10
    assert sandbox.in_flight == 0


async def test_faults_hit_in_order_and_expire(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.unavailable(times=2), Fault.rate_limited(retry_after=None))
    statuses = [(await post(sandbox, MESSAGE, GOOD_HEADERS))[0] for _ in range(4)]

    assert statuses == [503, 503, 429, 200]
    assert sandbox.pending_faults == 0


async def test_faults_at_a_rate_are_repeatable_with_a_seed() -> None:
    async def statuses(seed: int) -> list[int]:
        async with Sandbox(seed=seed) as sandbox:
            sandbox.inject(Fault.unavailable(times=None, rate=0.3))
            return [(await post(sandbox, MESSAGE, GOOD_HEADERS))[0] for _ in range(40)]

    first, second = await statuses(7), await statuses(7)
    assert first == second
    assert 3 <= first.count(503) <= 25


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("outcome_unknown", Fault.server_error(times=None)),
        ("outcome_unknown:0.1", Fault.server_error(times=None, rate=0.1)),
        (" dropped_connection:1 ", Fault.dropped_connection(times=None)),
        ("unavailable:0.5", Fault.unavailable(times=None, rate=0.5)),
        ("rate_limited", Fault.rate_limited(times=None)),
        ("slow:0.25", Fault.slow(2.0, times=None, rate=0.25)),
    ],
)
def test_a_fault_spec_names_a_fault_for_every_request(spec: str, fault: Fault) -> None:
    assert Fault.from_spec(spec) == fault


def test_every_fault_kind_has_a_spec_and_a_description() -> None:
    assert list(FAULT_KINDS) == [
        "outcome_unknown", "dropped_connection", "unavailable", "rate_limited", "slow",
    ]  # fmt: skip
    for kind, description in FAULT_KINDS.items():
        assert Fault.from_spec(kind).times is None
        assert description


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nope", "unknown fault kind 'nope': expected KIND[:RATE] with KIND one of "
         "outcome_unknown, dropped_connection, unavailable, rate_limited, slow "
         "(such as outcome_unknown:0.1)"),
        ("", "unknown fault kind ''"),
        ("503:0.1", "unknown fault kind '503'"),
        ("outcome_unknown:", "a fault's rate must be a number in (0, 1], the chance that a "
         "request is hit (such as outcome_unknown:0.1), got ''"),
        ("outcome_unknown:1.5", "a fault's rate must be a number in (0, 1]"),
        ("outcome_unknown:0", "a fault's rate must be a number in (0, 1]"),
        ("outcome_unknown:nan", "a fault's rate must be a number in (0, 1]"),
        ("outcome_unknown:ten%", "a fault's rate must be a number in (0, 1]"),
    ],
)  # fmt: skip
def test_a_bad_fault_spec_says_what_is_valid(spec: str, error: str) -> None:
    with pytest.raises(ValueError) as caught:
        Fault.from_spec(spec)
    assert str(caught.value).startswith(error)


async def test_a_fault_from_a_spec_hits_requests_at_its_rate() -> None:
    async with Sandbox(seed=3) as sandbox:
        sandbox.inject(Fault.from_spec("unavailable:0.5"))
        statuses = [(await post(sandbox, MESSAGE, GOOD_HEADERS))[0] for _ in range(40)]

    assert set(statuses) == {200, 503}
    assert sandbox.pending_faults == 1  # it never runs out


def test_a_fault_must_do_something() -> None:
    with pytest.raises(ValueError, match="must answer"):
        Fault()
    with pytest.raises(ValueError, match="rate"):
        Fault.unavailable(rate=0)


async def test_reset_forgets_records_and_faults(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.unavailable(times=None))
    await post(sandbox, MESSAGE, GOOD_HEADERS)

    sandbox.reset()

    assert (sandbox.requests, sandbox.messages, sandbox.pending_faults) == ([], [], 0)
    assert (await post(sandbox, MESSAGE, GOOD_HEADERS))[0] == 200


async def test_record_false_keeps_messages_but_not_requests() -> None:
    async with Sandbox(record=False) as sandbox:
        await post(sandbox, MESSAGE, GOOD_HEADERS)
        assert (len(sandbox.requests), len(sandbox.messages), sandbox.request_count) == (0, 1, 1)


# --- the pytest fixtures users get -----------------------------------------------------


async def test_the_threaded_fixture_serves_an_async_client_on_the_tests_loop(
    voipnumber_sandbox: Sandbox,
) -> None:
    async with AsyncVoipNumber(**voipnumber_sandbox.client_settings()) as client:
        voipnumber_sandbox.inject(Fault.unavailable())
        await client.sms.send(FROM, TO, "threaded")

    assert [m.body for m in voipnumber_sandbox.messages] == ["threaded"]
    assert len(voipnumber_sandbox.requests) == 2


def test_the_threaded_fixture_serves_blocking_code(voipnumber_sandbox: Sandbox) -> None:
    async def send() -> None:
        async with AsyncVoipNumber(**voipnumber_sandbox.client_settings()) as client:
            await client.sms.send(FROM, TO, "from a script")

    asyncio.run(send())

    assert voipnumber_sandbox.messages[0].body == "from a script"


def test_a_sandbox_that_cannot_bind_raises_in_the_caller() -> None:
    with (
        Sandbox().serve_in_thread() as first,
        pytest.raises(OSError),
        Sandbox().serve_in_thread(port=first.port),
    ):
        pass
