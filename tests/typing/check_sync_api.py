"""The public sync API as users type it; checked by `nox -s mypy`, never run."""

from __future__ import annotations

from datetime import datetime

from typing_extensions import assert_type

import voipnumber_async
from voipnumber_sync import (
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    SentMessage,
    Sms,
    Timeout,
    VoipNumber,
)


def send() -> None:
    with VoipNumber("acc", "tok", timeout=Timeout(connect=2), retry=RetryPolicy()) as client:
        assert_type(client, VoipNumber)
        assert_type(client.sms, Sms)
        message = client.sms.send("+447445459147", "+447483866525", "Thank you")
        assert_type(message, SentMessage)
        assert_type(message.created, datetime)
        keyed = client.sms.send(from_="+447445459147", to="+1", body="x", idempotency_key="k")
        assert_type(keyed, SentMessage)
        assert_type(client.with_options(timeout=5.0, max_retries=0), VoipNumber)
        assert_type(client.closed, bool)
        assert_type(client.close(), None)
        client.rotate_api_token("new")


def handle(client: VoipNumber) -> None:
    try:
        client.sms.send("+447445459147", "+447483866525", "x")
    except RateLimitError as error:
        assert_type(error.retry_after, float | None)
    except OutcomeUnknownError as error:
        assert_type(error.idempotency_key, str | None)


def same_classes() -> None:
    error: voipnumber_async.VoipNumberError = OutcomeUnknownError("x")
    assert_type(error, voipnumber_async.VoipNumberError)
