"""Connection failures and timeouts: classified by whether the request had been sent."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from _support import FAST_RETRIES, FROM, TO
from aioresponses import aioresponses

from voipnumber_async import (
    APIConnectionError,
    AsyncVoipNumber,
    ConfigurationError,
    OutcomeUnknownError,
    RetryPolicy,
    Timeout,
)
from voipnumber_async.sandbox import Fault, Sandbox


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_not_sent_and_is_retried() -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    async with AsyncVoipNumber("acc", "tok", base_url=base_url, retry=FAST_RETRIES) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.sms.send(FROM, TO, "x")

    assert caught.value.may_have_been_sent is False
    assert caught.value.attempts == 3
    assert "base_url" in str(caught.value)


async def test_a_dropped_connection_after_sending_is_outcome_unknown_and_not_retried(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.dropped_connection(after_processing=True))

    with pytest.raises(OutcomeUnknownError) as caught:
        await client.sms.send(FROM, TO, "x")

    assert caught.value.may_have_been_sent is True
    assert caught.value.attempts == 1
    assert sandbox.requests[0].status is None
    assert len(sandbox.messages) == 1


async def test_a_dropped_connection_retried_by_opt_in_sends_exactly_once(
    sandbox: Sandbox,
) -> None:
    sandbox.inject(Fault.dropped_connection(after_processing=True))
    policy = RetryPolicy(retry_outcome_unknown=True, initial_backoff=0.001)
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=policy) as client:
        message = await client.sms.send(FROM, TO, "x")

    assert len(sandbox.messages) == 1
    assert message.id == sandbox.messages[0].id
    assert len(sandbox.requests) == 2


async def test_a_read_timeout_is_outcome_unknown(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.slow(1.0, after_processing=True))
    async with AsyncVoipNumber(
        **sandbox.client_settings(), timeout=Timeout(read=0.2, total=5)
    ) as client:
        with pytest.raises(OutcomeUnknownError, match="read timeout") as caught:
            await client.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 1
    assert len(sandbox.messages) == 1  # it was sent: "unknown" was the honest answer


async def test_a_total_timeout_is_outcome_unknown(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.slow(1.0))
    async with AsyncVoipNumber(**sandbox.client_settings(), timeout=0.2) as client:
        with pytest.raises(OutcomeUnknownError, match="total timeout") as caught:
            await client.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 1


async def test_a_connect_timeout_is_not_sent_and_is_retried() -> None:
    url = "https://api.voipnumber.net/v1/sms/send"
    with aioresponses() as mocked:
        mocked.post(url, exception=aiohttp.ConnectionTimeoutError("connect"), repeat=True)
        async with AsyncVoipNumber("acc", "tok", retry=FAST_RETRIES) as client:
            with pytest.raises(APIConnectionError, match="timed out connecting") as caught:
                await client.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 3
    assert caught.value.may_have_been_sent is False


async def test_a_reset_while_reading_is_outcome_unknown() -> None:
    url = "https://api.voipnumber.net/v1/sms/send"
    with aioresponses() as mocked:
        mocked.post(url, exception=aiohttp.ClientPayloadError("truncated"), repeat=True)
        async with AsyncVoipNumber("acc", "tok", retry=FAST_RETRIES) as client:
            with pytest.raises(OutcomeUnknownError) as caught:
                await client.sms.send(FROM, TO, "x")

    assert caught.value.attempts == 1


async def test_a_slow_answer_within_the_timeout_succeeds(sandbox: Sandbox) -> None:
    sandbox.inject(Fault.slow(0.2))
    async with AsyncVoipNumber(**sandbox.client_settings(), timeout=5) as client:
        await client.sms.send(FROM, TO, "x")

    assert len(sandbox.messages) == 1


def test_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"Timeout\.read"):
        Timeout(read=0)


@pytest.mark.parametrize("timeout", ["30", 0, -1, True])
def test_an_invalid_timeout_is_a_configuration_error(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout") as caught:
        AsyncVoipNumber("acc", "tok", timeout=timeout)  # type: ignore[arg-type]
    assert caught.value.field == "timeout"
    with pytest.raises(ConfigurationError, match="timeout"):
        AsyncVoipNumber("acc", "tok").with_options(timeout=timeout)  # type: ignore[arg-type]


def test_a_retry_that_is_not_a_policy_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        AsyncVoipNumber("acc", "tok", retry=3)  # type: ignore[arg-type]
