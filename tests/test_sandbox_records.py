"""What the sandbox keeps: every count, the most recent `keep` records, a window of keys."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aiohttp
import pytest
from _support import FROM, TO

from voipnumber_async import AsyncVoipNumber, OutcomeUnknownError
from voipnumber_async.sandbox import (
    DEMO_ACCOUNT_ID,
    DEMO_API_TOKEN,
    Fault,
    Recent,
    Sandbox,
)

HEADERS = {"X-Account-Id": DEMO_ACCOUNT_ID, "Authorization": f"Bearer {DEMO_API_TOKEN}"}


async def post(
    sandbox: Sandbox, body: Any, *, key: str | None = None, token: str = DEMO_API_TOKEN
) -> tuple[int, bytes]:
    headers = {**HEADERS, "Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{sandbox.base_url}/v1/sms/send", data=json.dumps(body).encode(), headers=headers
        ) as response,
    ):
        return response.status, await response.read()


def message(text: str) -> dict[str, str]:
    return {"from": FROM, "to": TO, "body": text}


async def test_keep_holds_the_most_recent_records_and_the_counts_stay_exact() -> None:
    async with Sandbox(keep=3) as sandbox:
        for n in range(10):
            await post(sandbox, message(str(n)), key=f"k-{n}")

    assert [m.body for m in sandbox.messages] == ["7", "8", "9"]
    assert [r.json()["body"] for r in sandbox.requests] == ["7", "8", "9"]
    assert (sandbox.request_count, sandbox.accepted_count) == (10, 10)
    assert sandbox.status_counts == Counter({200: 10})
    assert sandbox.remembered_keys == 10


async def test_every_answer_is_counted_by_status_error_code_and_fault() -> None:
    refused = Fault.unavailable(times=2)
    unknown = Fault.server_error()
    async with Sandbox(keep=1) as sandbox:
        sandbox.inject(refused, unknown)
        for _ in range(3):  # 503, 503, then accepted behind a 500
            await post(sandbox, message("faulted"))
        await post(sandbox, message(""))  # MESSAGE_INVALID
        await post(sandbox, message("x"), token="wrong")  # API_TOKEN_INVALID
        await post(sandbox, message("ok"), key="same")
        await post(sandbox, message("ok"), key="same")  # replayed
        await post(sandbox, message("other"), key="same")  # IDEMPOTENCY_KEY_REUSED

    assert sandbox.request_count == 8
    assert sandbox.status_counts == Counter({503: 2, 500: 1, 400: 1, 401: 1, 200: 2, 422: 1})
    assert sandbox.error_counts == Counter(
        {"MESSAGE_INVALID": 1, "API_TOKEN_INVALID": 1, "IDEMPOTENCY_KEY_REUSED": 1}
    )
    assert sandbox.fault_counts == Counter({refused: 2, unknown: 1})
    assert (sandbox.accepted_count, sandbox.replayed_count) == (2, 1)
    assert len(sandbox.requests) == len(sandbox.messages) == 1


async def test_a_dropped_connection_is_counted_as_no_status() -> None:
    async with (
        Sandbox(keep=0) as sandbox,
        AsyncVoipNumber(**sandbox.client_settings(), max_retries=0) as client,
    ):
        sandbox.inject(Fault.dropped_connection())
        with pytest.raises(OutcomeUnknownError):
            await client.sms.send(FROM, TO, "dropped")

    assert sandbox.status_counts == Counter({None: 1})
    assert (sandbox.accepted_count, len(sandbox.messages), len(sandbox.requests)) == (1, 0, 0)


@pytest.mark.parametrize("envelope", ["single", "nested"])
async def test_a_repeated_key_gets_the_first_answer_byte_for_byte(envelope: Any) -> None:
    async with Sandbox(envelope=envelope) as sandbox:
        first = await post(sandbox, message("once"), key="k")
        again = await post(sandbox, message("once"), key="k")

    assert first[0] == again[0] == 200
    assert again[1] == first[1]
    assert len(sandbox.messages) == sandbox.accepted_count == 1
    assert [r.replayed for r in sandbox.requests] == [False, True]


async def test_a_key_older_than_the_window_is_forgotten_and_sends_again() -> None:
    async with Sandbox(keep_keys=2) as sandbox:
        for key in ("k-1", "k-2", "k-3"):
            await post(sandbox, message(key), key=key)
        await post(sandbox, message("k-3"), key="k-3")  # still in the window: replayed
        await post(sandbox, message("k-1"), key="k-1")  # forgotten: a new message

    assert [m.idempotency_key for m in sandbox.messages] == ["k-1", "k-2", "k-3", "k-1"]
    assert sandbox.replayed_count == 1
    assert sandbox.remembered_keys == 2


async def test_a_window_of_no_keys_replays_nothing() -> None:
    async with Sandbox(keep_keys=0) as sandbox:
        await post(sandbox, message("a"), key="k")
        await post(sandbox, message("a"), key="k")

    assert (sandbox.accepted_count, sandbox.replayed_count, sandbox.remembered_keys) == (2, 0, 0)


async def test_the_window_is_per_account_like_the_keys() -> None:
    async with Sandbox(keep_keys=None) as sandbox:
        await post(sandbox, message("a"), key="shared")
        other = Sandbox().accounts["other-account"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{sandbox.base_url}/v1/sms/send",
                json={"from": "+447700900999", "to": TO, "body": "a"},
                headers={
                    "X-Account-Id": other.account_id,
                    "Authorization": f"Bearer {other.api_token}",
                    "Idempotency-Key": "shared",
                },
            ) as response,
        ):
            assert response.status == 200

    assert (sandbox.accepted_count, sandbox.replayed_count) == (2, 0)


async def test_reset_zeroes_every_count() -> None:
    async with Sandbox() as sandbox:
        sandbox.inject(Fault.unavailable())
        await post(sandbox, message("a"))
        await post(sandbox, message(""))
        await post(sandbox, message("b"), key="k")
        sandbox.reset()

        assert (sandbox.request_count, sandbox.accepted_count, sandbox.replayed_count) == (0, 0, 0)
        assert (sandbox.status_counts, sandbox.error_counts, sandbox.fault_counts) == ({}, {}, {})
        assert sandbox.remembered_keys == 0
        assert (await post(sandbox, message("c"), key="k"))[0] == 200  # a new key again
        assert sandbox.replayed_count == 0


@pytest.mark.parametrize("keyword", ["keep", "keep_keys"])
def test_a_negative_bound_is_refused(keyword: str) -> None:
    expected = rf"^{keyword} must be an int >= 0 .* or None \(all\), got -1"
    with pytest.raises(ValueError, match=expected):
        Sandbox(**{keyword: -1})


# --- Recent: the deque that stands in for the lists it replaced -----------------------------


def test_recent_compares_and_slices_as_a_list() -> None:
    recent: Recent[int] = Recent([1, 2, 3, 4], maxlen=3)

    assert recent == [2, 3, 4]
    assert [2, 3, 4] == recent  # noqa: SIM300 - list.__eq__ gives way to Recent's
    assert recent != [2, 3]
    assert not recent != [2, 3, 4]  # noqa: SIM202 - the != of deque must agree with ==
    assert recent[-2:] == [3, 4]
    assert recent[0] == 2
    assert (recent, 0) == ([2, 3, 4], 0)
    assert Recent() == []


def test_reading_recent_while_it_grows_never_raises() -> None:
    # The sandbox appends from its own thread while a test may be iterating.
    recent: Recent[int] = Recent([1, 2], maxlen=5)
    reading = iter(recent)
    assert next(reading) == 1

    recent.append(3)

    assert list(reading) == [2]  # a deque would raise "deque mutated during iteration"
    assert recent == [1, 2, 3]
