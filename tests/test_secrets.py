"""The API token never appears in logs, reprs, exceptions or pickles."""

from __future__ import annotations

import logging
import pickle

import pytest
from _support import FROM, TO

from voipnumber_async import AsyncVoipNumber, RetryPolicy, VoipNumberError
from voipnumber_async.sandbox import Fault, Sandbox, SandboxAccount

TOKEN = "tok_SECRET_4f9c2e81d7"


@pytest.fixture
async def secret_sandbox() -> Sandbox:
    account = SandboxAccount(account_id="acc-1", api_token=TOKEN, numbers=[FROM])
    async with Sandbox(accounts=[account]) as sandbox:
        yield sandbox  # type: ignore[misc]


async def test_the_token_appears_nowhere_a_user_or_a_log_can_see(
    secret_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    policy = RetryPolicy(initial_backoff=0.001, retry_outcome_unknown=True, max_retries=1)
    errors: list[VoipNumberError] = []
    faults = [
        Fault.unavailable(times=2),
        Fault.server_error(500, times=2),
        Fault.dropped_connection(times=2),
        Fault.respond(200, "<html>oops</html>", content_type="text/html"),
    ]
    async with AsyncVoipNumber("acc-1", TOKEN, base_url=secret_sandbox.base_url, retry=policy) as c:
        shown = [repr(c), str(c), repr(c.with_options(timeout=3)), repr(c._credentials)]
        await c.sms.send(FROM, TO, "ok")
        for fault in faults:
            secret_sandbox.inject(fault)
            try:
                await c.sms.send(FROM, TO, "x")
            except VoipNumberError as error:
                errors.append(error)
        c.rotate_api_token("wrong-token")
        try:
            await c.sms.send(FROM, TO, "x")
        except VoipNumberError as error:
            errors.append(error)

    assert len(errors) == 5
    for error in errors:
        shown += [str(error), repr(error), repr(error.__dict__)]
        assert TOKEN.encode() not in pickle.dumps(error)
    shown.append(caplog.text)
    assert caplog.records, "the scenario must have logged something to check"
    for text in shown:
        assert TOKEN not in text
    assert "wrong-token" not in caplog.text


def test_a_client_cannot_be_pickled() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(AsyncVoipNumber("acc", TOKEN))


def test_the_sandbox_account_repr_hides_its_token() -> None:
    assert TOKEN not in repr(SandboxAccount(account_id="a", api_token=TOKEN))
