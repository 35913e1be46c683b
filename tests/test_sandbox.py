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
