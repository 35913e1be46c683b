"""Sending: what the caller gets back and what the service receives."""

from __future__ import annotations

import asyncio
import gc
import uuid
from datetime import datetime, timezone

import pytest
from _support import FAST_RETRIES, FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    SentMessage,
    Timeout,
)
from voipnumber_async.sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, Fault, Sandbox


async def test_send_returns_the_queued_message_the_service_accepted(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    message = await client.sms.send(FROM, TO, "Thank you")

    assert isinstance(message, SentMessage)
    assert message.status == "queued"
    assert message.body == "Thank you"
    (accepted,) = sandbox.messages
    assert message.id == accepted.id
    assert (accepted.from_, accepted.to, accepted.body) == (FROM, TO, "Thank you")
    assert message.timestamp_s == accepted.timestamp_s
    assert message.created == datetime.fromtimestamp(accepted.timestamp_s, timezone.utc)
    assert message.created.tzinfo is not None


async def test_send_accepts_keyword_arguments(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    await client.sms.send(from_=FROM, to=TO, body="keywords")

    assert sandbox.messages[0].body == "keywords"


async def test_request_carries_the_contract_headers_and_json(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    await client.sms.send(FROM, TO, "Thank you")

    (request,) = sandbox.requests
    assert request.method == "POST"
    assert request.path == "/v1/sms/send"
    assert request.json() == {"from": FROM, "to": TO, "body": "Thank you"}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.headers["X-Account-Id"] == DEMO_ACCOUNT_ID
    assert request.headers["Authorization"] == f"Bearer {DEMO_API_TOKEN}"
    assert request.headers["User-Agent"].startswith("voipnumber-python/")
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4


async def test_each_message_gets_its_own_idempotency_key(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    await client.sms.send(FROM, TO, "one")
    await client.sms.send(FROM, TO, "two")

    keys = [request.idempotency_key for request in sandbox.requests]
    assert len(set(keys)) == 2


async def test_a_callers_idempotency_key_is_sent_and_replays_without_a_second_message(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    first = await client.sms.send(FROM, TO, "once", idempotency_key="order-1234-sms")
    again = await client.sms.send(FROM, TO, "once", idempotency_key="order-1234-sms")

    assert [r.idempotency_key for r in sandbox.requests] == ["order-1234-sms"] * 2
    assert len(sandbox.messages) == 1
    assert sandbox.requests[1].replayed
    assert again == first


async def test_non_ascii_body_is_sent_as_utf8(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    message = await client.sms.send(FROM, TO, "Grüße 😀")

    assert message.body == "Grüße 😀"
    assert sandbox.messages[0].body == "Grüße 😀"


async def test_nested_envelope_decodes_like_the_single_one(sandbox: Sandbox) -> None:
    sandbox.envelope = "nested"
    async with AsyncVoipNumber(**sandbox.client_settings()) as client:
        message = await client.sms.send(FROM, TO, "nested")

    assert message.id == sandbox.messages[0].id
    assert message.status == "queued"


async def test_unknown_status_and_extra_fields_are_kept(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(
        Fault.respond(
            200,
            {
                "status": "OK",
                "result": {
                    "status": "scheduled",
                    "body": "later",
                    "timestamp_s": 1716193717,
                    "created": "20 May 2024 08:28:37",
                    "id": "feefcc83-d6ae-4580-b4dc-6ee16b37ff04",
                    "segments": 2,
                },
            },
        )
    )

    message = await client.sms.send(FROM, TO, "later")

    assert message.status == "scheduled"
    assert message.extra == {"segments": 2}


# --- validation: nothing is sent -------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"from_": "447445459147", "to": TO, "body": "x"}, "from_"),
        ({"from_": FROM, "to": "07483 866525", "body": "x"}, "to"),
        ({"from_": FROM, "to": "+0447483866525", "body": "x"}, "to"),
        ({"from_": FROM, "to": "+44748386652512345", "body": "x"}, "to"),
        ({"from_": FROM, "to": 447483866525, "body": "x"}, "to"),
        ({"from_": FROM, "to": TO, "body": ""}, "body"),
        ({"from_": FROM, "to": TO, "body": " \t\n "}, "body"),
        ({"from_": FROM, "to": TO, "body": None}, "body"),
        ({"from_": FROM, "to": TO, "body": "x", "idempotency_key": ""}, "idempotency_key"),
        ({"from_": FROM, "to": TO, "body": "x", "idempotency_key": "a b"}, "idempotency_key"),
    ],
)
async def test_invalid_input_is_rejected_before_sending(
    client: AsyncVoipNumber, sandbox: Sandbox, arguments: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await client.sms.send(**arguments)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert field.rstrip("_") in str(caught.value)
    assert caught.value.may_have_been_sent is False
    assert isinstance(caught.value, ValueError)
    assert sandbox.requests == []


# --- configuration -----------------------------------------------------------------------


def test_missing_account_id_is_an_error_at_construction_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="VOIPNUMBER_ACCOUNT_ID") as caught:
        AsyncVoipNumber(api_token="t")
    assert caught.value.field == "account_id"


def test_missing_api_token_is_an_error_at_construction_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="VOIPNUMBER_API_TOKEN") as caught:
        AsyncVoipNumber("acc")
    assert caught.value.field == "api_token"


def test_empty_environment_variables_count_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOIPNUMBER_ACCOUNT_ID", "")
    monkeypatch.setenv("VOIPNUMBER_API_TOKEN", "t")
    with pytest.raises(ConfigurationError, match="VOIPNUMBER_ACCOUNT_ID"):
        AsyncVoipNumber()


@pytest.mark.parametrize("base_url", ["api.voipnumber.net", "ftp://x", "http://"])
def test_an_invalid_base_url_is_an_error_at_construction(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        AsyncVoipNumber("acc", "tok", base_url=base_url)


def test_default_base_url_is_the_service() -> None:
    assert AsyncVoipNumber("acc", "tok").base_url == "https://api.voipnumber.net"


async def test_credentials_and_base_url_come_from_the_environment(
    voipnumber_env: Sandbox,
) -> None:
    async with AsyncVoipNumber() as client:
        await client.sms.send(FROM, TO, "from env")

    assert client.base_url == voipnumber_env.base_url
    assert voipnumber_env.messages[0].account_id == DEMO_ACCOUNT_ID


async def test_arguments_win_over_the_environment(
    voipnumber_env: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOIPNUMBER_ACCOUNT_ID", "someone-else")

    async with AsyncVoipNumber(account_id=DEMO_ACCOUNT_ID) as client:
        await client.sms.send(FROM, TO, "explicit")

    assert voipnumber_env.messages[0].account_id == DEMO_ACCOUNT_ID


def test_a_number_is_a_total_timeout() -> None:
    client = AsyncVoipNumber("acc", "tok", timeout=5)
    assert client.timeout == Timeout(total=5.0, connect=5.0)


def test_max_retries_overrides_the_policy_and_zero_turns_retries_off() -> None:
    assert AsyncVoipNumber("acc", "tok").retry_policy.max_retries == 2
    assert AsyncVoipNumber("acc", "tok", max_retries=0).retry_policy.max_retries == 0
    client = AsyncVoipNumber("acc", "tok", retry=FAST_RETRIES, max_retries=5)
    assert client.retry_policy.max_retries == 5
    assert client.retry_policy.initial_backoff == FAST_RETRIES.initial_backoff


def test_negative_max_retries_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="max_retries"):
        AsyncVoipNumber("acc", "tok", max_retries=-1)


# --- lifecycle ------------------------------------------------------------------------


async def test_with_options_shares_the_pool_and_closing_the_copy_keeps_it_open(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    patient = client.with_options(timeout=60, max_retries=5)
    await client.sms.send(FROM, TO, "parent")
    await patient.sms.send(FROM, TO, "copy")

    assert patient.timeout.total == 60
    assert patient.retry_policy.max_retries == 5
    assert client.retry_policy.max_retries == FAST_RETRIES.max_retries
    assert patient._transport is client._transport  # one pool
    await patient.aclose()
    await client.sms.send(FROM, TO, "still open")
    assert len(sandbox.messages) == 3


async def test_a_closed_client_refuses_to_send_and_closing_twice_is_fine(
    sandbox: Sandbox,
) -> None:
    client = AsyncVoipNumber(**sandbox.client_settings())
    copy = client.with_options(max_retries=0)
    await client.sms.send(FROM, TO, "before")
    await client.aclose()
    await client.aclose()

    for closed in (client, copy):
        with pytest.raises(ClientClosedError, match="closed"):
            await closed.sms.send(FROM, TO, "after")
    assert client.closed
    assert len(sandbox.requests) == 1


async def test_a_client_that_was_never_closed_warns(sandbox: Sandbox) -> None:
    client = AsyncVoipNumber(**sandbox.client_settings())
    await client.sms.send(FROM, TO, "leak")

    with pytest.warns(ResourceWarning, match="not closed"):
        del client
        gc.collect()


async def test_a_client_never_used_needs_no_closing() -> None:
    client = AsyncVoipNumber("acc", "tok")
    del client
    gc.collect()  # ResourceWarning is an error in this suite: none may be raised


async def test_rotating_the_token_reaches_the_client_and_its_copies(sandbox: Sandbox) -> None:
    settings = sandbox.client_settings()
    async with AsyncVoipNumber(
        settings["account_id"], "stale-token", base_url=settings["base_url"], max_retries=0
    ) as client:
        copy = client.with_options(timeout=10)
        client.rotate_api_token(settings["api_token"])
        await client.sms.send(FROM, TO, "rotated")
        await copy.sms.send(FROM, TO, "rotated copy")

    assert [r.headers["Authorization"] for r in sandbox.requests] == [
        f"Bearer {settings['api_token']}"
    ] * 2


def test_rotating_to_an_empty_token_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        AsyncVoipNumber("acc", "tok").rotate_api_token("")


async def test_many_concurrent_sends_share_one_client_without_duplicates(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    messages = await asyncio.gather(*(client.sms.send(FROM, TO, f"m{i}") for i in range(200)))

    assert len({m.id for m in messages}) == 200
    assert sorted(m.body for m in sandbox.messages) == sorted(f"m{i}" for i in range(200))
    assert all(len(group) == 1 for group in sandbox.messages_by_key().values())


async def test_a_client_cannot_move_to_another_event_loop(sandbox: Sandbox) -> None:
    client = AsyncVoipNumber(**sandbox.client_settings())
    await client.sms.send(FROM, TO, "first loop")

    with pytest.raises(RuntimeError, match="another event loop"):
        await asyncio.to_thread(asyncio.run, client.sms.send(FROM, TO, "second loop"))
    await client.aclose()
    assert len(sandbox.messages) == 1


async def test_a_burst_larger_than_the_pool_waits_its_turn_instead_of_failing(
    sandbox: Sandbox,
) -> None:
    # Each answer takes 0.3s and one connection serves them in turn: the last of five
    # waits ~1.2s for the pool, far past a 0.5s connect limit, and must still be sent.
    sandbox.inject(Fault.slow(0.3, times=5))
    timeout = Timeout(connect=0.5, total=2)
    async with AsyncVoipNumber(
        **sandbox.client_settings(), max_connections=1, timeout=timeout, max_retries=0
    ) as client:
        await asyncio.gather(*(client.sms.send(FROM, TO, f"burst {i}") for i in range(5)))

    assert len(sandbox.messages) == 5
    assert sandbox.peak_in_flight == 1
