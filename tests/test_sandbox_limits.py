"""The sandbox's rate limit: past it an account is answered 429 `RATE_LIMITED`, unprocessed."""

from __future__ import annotations

import aiohttp
import pytest
from _support import FROM, TO

from voipnumber_async import AsyncVoipNumber, RateLimitError, RetryPolicy
from voipnumber_async.sandbox import DEMO_API_TOKEN, DEMO_NUMBER, Sandbox, SandboxAccount

NO_RETRIES = RetryPolicy(max_retries=0)


async def test_past_the_limit_the_answer_is_the_contracts_429_with_retry_after() -> None:
    async with Sandbox(rate_limit=1) as sandbox, aiohttp.ClientSession() as session:
        answers = []
        for text in ("first", "second"):
            async with session.post(
                f"{sandbox.base_url}/v1/sms/send",
                json={"from": FROM, "to": TO, "body": text},
                headers={
                    "X-Account-Id": "demo-account",
                    "Authorization": f"Bearer {DEMO_API_TOKEN}",
                },
            ) as answer:
                answers.append((answer.status, await answer.json(), answer.headers))

    (first, _, _), (status, body, headers) = answers
    assert (first, status) == (200, 429)
    assert body == {"status": "ERROR", "code": "RATE_LIMITED", "description": "Too many requests"}
    assert int(headers["Retry-After"]) >= 1
    assert sandbox.accepted_count == 1  # the refused one was not processed
    assert [request.status for request in sandbox.requests] == [200, 429]
    assert sandbox.error_counts["RATE_LIMITED"] == 1


async def test_the_client_hears_a_rate_limit_error() -> None:
    async with (
        Sandbox(rate_limit=1) as sandbox,
        AsyncVoipNumber(**sandbox.client_settings(), retry=NO_RETRIES) as client,
    ):
        await client.sms.send(FROM, TO, "within")
        with pytest.raises(RateLimitError) as caught:
            await client.sms.send(FROM, TO, "past")
    assert caught.value.code == "RATE_LIMITED"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1


async def test_each_account_has_a_limit_of_its_own() -> None:
    async with Sandbox(rate_limit=1) as sandbox:
        for account in ("demo-account", "other-account"):
            async with AsyncVoipNumber(**sandbox.client_settings(account), retry=NO_RETRIES) as c:
                number = DEMO_NUMBER if account == "demo-account" else "+447700900999"
                await c.sms.send(number, TO, "one each")  # the other's send did not count
    assert sandbox.accepted_count == 2


async def test_an_accounts_own_limit_wins_and_others_are_unlimited() -> None:
    accounts = [
        SandboxAccount(account_id="slow", api_token="t1", numbers=[FROM], rate_limit=1),
        SandboxAccount(account_id="fast", api_token="t2", numbers=["+447445459148"]),
    ]
    async with Sandbox(accounts=accounts) as sandbox:
        async with AsyncVoipNumber(**sandbox.client_settings("fast"), retry=NO_RETRIES) as fast:
            for i in range(20):
                await fast.sms.send("+447445459148", TO, f"unlimited {i}")
        async with AsyncVoipNumber(**sandbox.client_settings("slow"), retry=NO_RETRIES) as slow:
            await slow.sms.send(FROM, TO, "within")
            with pytest.raises(RateLimitError):
                await slow.sms.send(FROM, TO, "past")


@pytest.mark.parametrize("rate", [0, -1, True, "5"])
def test_the_limit_must_be_a_positive_number(rate: object) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        Sandbox(rate_limit=rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate_limit"):
        SandboxAccount(account_id="a", api_token="t", rate_limit=rate)  # type: ignore[arg-type]
