"""Which answer becomes which error, and what every error carries."""

from __future__ import annotations

import pickle

import pytest
from _support import FROM, TO, fixture_bytes, fixture_json

import voipnumber_async
import voipnumber_sync
from voipnumber_async import (
    APIConnectionError,
    APIError,
    AsyncVoipNumber,
    AuthenticationError,
    InvalidRequestError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    VoipNumberError,
)
from voipnumber_async.sandbox import OTHER_ACCOUNT_NUMBER, Fault, Sandbox

DOCUMENTED = fixture_json("error-codes.json")
CLASS_OF = {
    "USER_ACCOUNT_MISSING": AuthenticationError,
    "API_TOKEN_MISSING": AuthenticationError,
    "USER_NOT_FOUND": AuthenticationError,
    "API_TOKEN_INVALID": AuthenticationError,
    "NUMBER_NOT_FOUND": NumberNotFoundError,
    "NUMBER_OWNERSHIP": NumberOwnershipError,
    "MESSAGE_INVALID": MessageInvalidError,
}
STATUS_OF = {
    "USER_ACCOUNT_MISSING": 401,
    "API_TOKEN_MISSING": 401,
    "USER_NOT_FOUND": 401,
    "API_TOKEN_INVALID": 401,
    "NUMBER_NOT_FOUND": 404,
    "NUMBER_OWNERSHIP": 403,
    "MESSAGE_INVALID": 400,
}


def test_the_tables_cover_exactly_the_documented_codes() -> None:
    assert set(DOCUMENTED) == set(CLASS_OF) == set(STATUS_OF)


async def send_once(client: AsyncVoipNumber) -> VoipNumberError:
    with pytest.raises(VoipNumberError) as caught:
        await client.sms.send(FROM, TO, "x")
    return caught.value


@pytest.mark.parametrize("code", sorted(DOCUMENTED))
async def test_every_documented_code_maps_to_its_class(
    client: AsyncVoipNumber, sandbox: Sandbox, code: str
) -> None:
    body = {"status": "ERROR", "error": {"code": code, "description": DOCUMENTED[code]}}
    sandbox.inject(Fault.respond(STATUS_OF[code], body))

    error = await send_once(client)

    assert type(error) is CLASS_OF[code]
    assert isinstance(error, APIError)
    assert (error.code, error.description, error.http_status) == (
        code,
        DOCUMENTED[code],
        STATUS_OF[code],
    )
    assert error.may_have_been_sent is False
    assert error.attempts == 1  # documented codes are answers: never retried
    assert len(sandbox.requests) == 1
    assert code in str(error)


@pytest.mark.parametrize("code", sorted(DOCUMENTED))
async def test_a_documented_code_wins_over_the_http_status(
    client: AsyncVoipNumber, sandbox: Sandbox, code: str
) -> None:
    body = {"status": "ERROR", "code": code, "description": DOCUMENTED[code]}
    sandbox.inject(Fault.respond(503, body))

    error = await send_once(client)

    assert type(error) is CLASS_OF[code]
    assert error.http_status == 503
    assert error.attempts == 1


async def test_the_nested_error_fixture_decodes(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    sandbox.inject(Fault.respond(403, fixture_bytes("send-error.json")))

    error = await send_once(client)

    assert type(error) is NumberOwnershipError
    assert error.description == "Number doesn't belong to this account"


async def test_the_flat_error_fixture_decodes(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    sandbox.inject(Fault.respond(401, fixture_bytes("send-error-flat.json")))

    error = await send_once(client)

    assert type(error) is AuthenticationError
    assert error.code == "API_TOKEN_INVALID"
    assert error.description == "API token doesn't match AccountId"


async def test_an_error_in_a_200_is_raised(client: AsyncVoipNumber, sandbox: Sandbox) -> None:
    sandbox.inject(Fault.respond(200, fixture_bytes("send-error.json")))

    error = await send_once(client)

    assert type(error) is NumberOwnershipError
    assert error.http_status == 200
    assert error.may_have_been_sent is False


async def test_an_error_inside_the_nested_envelope_is_raised(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    inner = fixture_json("send-error-flat.json")
    sandbox.inject(Fault.respond(200, {"status": "OK", "result": inner}))

    error = await send_once(client)

    assert type(error) is AuthenticationError
    assert error.code == "API_TOKEN_INVALID"


async def test_an_unknown_code_is_a_plain_api_error_keeping_code_and_description(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    body = {"status": "ERROR", "error": {"code": "NUMBER_SUSPENDED", "description": "Suspended"}}
    sandbox.inject(Fault.respond(409, body))

    error = await send_once(client)

    assert type(error) is APIError
    assert (error.code, error.description, error.http_status) == (
        "NUMBER_SUSPENDED",
        "Suspended",
        409,
    )
    assert error.may_have_been_sent is False
    assert error.attempts == 1


async def test_an_html_502_from_a_proxy_is_service_unavailable(sandbox: Sandbox) -> None:
    sandbox.inject(
        Fault.respond(502, "<html><body>Bad Gateway</body></html>", content_type="text/html")
    )
    async with AsyncVoipNumber(**sandbox.client_settings(), max_retries=0) as client:
        error = await send_once(client)

    assert type(error) is ServiceUnavailableError
    assert error.http_status == 502
    assert error.code is None
    assert "Bad Gateway" in str(error)
    assert error.may_have_been_sent is False
    assert sandbox.messages == []


async def test_a_non_json_200_is_an_unexpected_response_and_not_retried(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.respond(200, "<html>OK</html>", content_type="text/html"))

    error = await send_once(client)

    assert type(error) is UnexpectedResponseError
    assert error.http_status == 200
    assert error.excerpt == "<html>OK</html>"
    assert error.may_have_been_sent is True
    assert error.attempts == 1


async def test_json_of_no_known_shape_is_an_unexpected_response(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.respond(200, {"hello": "world"}))

    error = await send_once(client)

    assert type(error) is UnexpectedResponseError
    assert '"hello"' in error.excerpt


async def test_a_success_whose_message_cannot_be_read_says_it_was_probably_sent(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    body = {
        "status": "OK",
        "result": {
            "id": "x",
            "status": "queued",
            "body": "x",
            "timestamp_s": 1,
            "created": "yesterday",
        },
    }
    sandbox.inject(Fault.respond(200, body))

    error = await send_once(client)

    assert type(error) is UnexpectedResponseError
    assert error.may_have_been_sent is True
    assert "probably sent" in str(error)


async def test_a_401_with_no_code_is_an_authentication_error(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.respond(401, "Unauthorized", content_type="text/plain"))

    error = await send_once(client)

    assert type(error) is AuthenticationError
    assert error.code is None


async def test_a_4xx_that_is_not_json_is_unexpected_and_was_not_sent(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.respond(404, "<html>Not Found</html>", content_type="text/html"))

    error = await send_once(client)

    assert type(error) is UnexpectedResponseError
    assert error.may_have_been_sent is False


# --- the sandbox's own answers through the client --------------------------------------


async def test_sending_from_another_accounts_number_is_number_ownership(
    client: AsyncVoipNumber,
) -> None:
    with pytest.raises(NumberOwnershipError) as caught:
        await client.sms.send(OTHER_ACCOUNT_NUMBER, TO, "x")
    assert caught.value.http_status == 403


async def test_sending_from_an_unknown_number_is_number_not_found(
    client: AsyncVoipNumber,
) -> None:
    with pytest.raises(NumberNotFoundError):
        await client.sms.send("+15005550006", TO, "x")


async def test_a_wrong_token_is_api_token_invalid_with_a_hint(sandbox: Sandbox) -> None:
    settings = sandbox.client_settings()
    async with AsyncVoipNumber(settings["account_id"], "wrong", base_url=settings["base_url"]) as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.sms.send(FROM, TO, "x")

    assert caught.value.code == "API_TOKEN_INVALID"
    assert "rotate_api_token" in str(caught.value)


async def test_an_unknown_account_is_user_not_found(sandbox: Sandbox) -> None:
    async with AsyncVoipNumber("nobody", "t", base_url=sandbox.base_url) as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.sms.send(FROM, TO, "x")

    assert caught.value.code == "USER_NOT_FOUND"


# --- what every error carries ----------------------------------------------------------


async def test_every_error_carries_attempts_and_the_idempotency_key(
    client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.unavailable(times=3))

    error = await send_once(client)

    assert type(error) is ServiceUnavailableError
    assert error.attempts == 3
    assert error.idempotency_key == sandbox.requests[0].idempotency_key
    assert error.request_id is not None and error.request_id.startswith("req_")


ERRORS = [
    VoipNumberError("base", attempts=2, idempotency_key="k"),
    InvalidRequestError("bad to", field="to"),
    APIError("x", code="C", description="d", http_status=409, retry_after=1.5, request_id="r"),
    AuthenticationError("a", code="API_TOKEN_INVALID", http_status=401),
    NumberNotFoundError("n", code="NUMBER_NOT_FOUND"),
    NumberOwnershipError("o", code="NUMBER_OWNERSHIP"),
    MessageInvalidError("m", code="MESSAGE_INVALID"),
    RateLimitError("r", retry_after=3.0, http_status=429),
    ServiceUnavailableError("s", http_status=503),
    APIConnectionError("c"),
    OutcomeUnknownError("u", http_status=500, attempts=1, idempotency_key="key-1"),
    UnexpectedResponseError("e", excerpt="<html>", http_status=200),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_and_unpickle_intact(error: VoipNumberError) -> None:
    copy = pickle.loads(pickle.dumps(error))

    assert type(copy) is type(error)
    assert copy.__dict__ == error.__dict__
    assert str(copy) == str(error)
    assert copy.args == error.args


def test_may_have_been_sent_is_true_only_for_unknown_outcomes() -> None:
    assert [type(e).__name__ for e in ERRORS if e.may_have_been_sent] == [
        "OutcomeUnknownError",
        "UnexpectedResponseError",
    ]


def test_the_sync_package_exports_the_very_same_classes() -> None:
    for name in voipnumber_async._errors.__all__:
        assert getattr(voipnumber_sync, name) is getattr(voipnumber_async, name)
    assert voipnumber_sync.SentMessage is voipnumber_async.SentMessage
    assert voipnumber_sync.RetryPolicy is voipnumber_async.RetryPolicy
