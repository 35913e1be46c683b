"""No frame an error passes through holds the token; closing and bad credentials are typed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest
from _support import FROM, TO

from voipnumber_async import (
    AsyncVoipNumber,
    ClientClosedError,
    ConfigurationError,
    OutgoingMessage,
    VoipNumberError,
)
from voipnumber_async.sandbox import Fault, Sandbox, SandboxAccount
from voipnumber_sync import VoipNumber

TOKEN = "tok_FRAMES_b81d7e"


def frames(error: BaseException) -> Iterator[dict[str, Any]]:
    """The locals of every frame the error (and what it was raised from) passed through."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        traceback: TracebackType | None = current.__traceback__
        while traceback is not None:
            yield dict(traceback.tb_frame.f_locals)
            traceback = traceback.tb_next
        pending += [current.__cause__, current.__context__]


def holds(value: object, secret: str, depth: int = 0) -> bool:
    """Whether `value` shows `secret` to a tool that records locals (repr, or walking them)."""
    if depth > 4:
        return False
    if isinstance(value, (str, bytes)):
        return secret in (value if isinstance(value, str) else value.decode("latin-1"))
    if isinstance(value, dict) or hasattr(value, "items"):
        try:
            items = list(value.items())  # type: ignore[attr-defined]
        except Exception:
            items = []
        if any(holds(k, secret, depth + 1) or holds(v, secret, depth + 1) for k, v in items):
            return True
    elif isinstance(value, (list, tuple, set, frozenset)) and any(
        holds(item, secret, depth + 1) for item in value
    ):
        return True
    try:
        return secret in repr(value)
    except Exception:
        return False


def assert_no_frame_holds(error: BaseException, secret: str) -> None:
    for number, local_values in enumerate(frames(error)):
        for name, value in local_values.items():
            assert not holds(value, secret), f"frame {number} local {name!r} holds the secret"


@pytest.mark.parametrize(
    "fault",
    [Fault.dropped_connection(), Fault.server_error(500), Fault.unavailable()],
    ids=["dropped", "500", "503"],
)
async def test_no_frame_of_a_failed_send_holds_the_token(fault: Fault) -> None:
    account = SandboxAccount(account_id="acc-1", api_token=TOKEN, numbers=[FROM])
    async with Sandbox(accounts=[account]) as sandbox:
        sandbox.inject(fault)
        async with AsyncVoipNumber("acc-1", TOKEN, base_url=sandbox.base_url, max_retries=0) as c:
            with pytest.raises(VoipNumberError) as caught:
                await c.sms.send(FROM, TO, "hi")

    assert_no_frame_holds(caught.value, TOKEN)


async def test_no_frame_of_a_refused_connection_holds_the_token() -> None:
    async with AsyncVoipNumber("acc-1", TOKEN, base_url="http://127.0.0.1:9", max_retries=0) as c:
        with pytest.raises(VoipNumberError) as caught:
            await c.sms.send(FROM, TO, "hi")

    assert_no_frame_holds(caught.value, TOKEN)


@pytest.mark.parametrize("make", [AsyncVoipNumber, VoipNumber], ids=["async", "sync"])
def test_no_frame_of_a_refused_constructor_holds_the_token(make: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make("acc-1", TOKEN, base_url="ftp://nowhere")

    assert_no_frame_holds(caught.value, TOKEN)


@pytest.mark.parametrize(
    ("account_id", "api_token", "field"),
    [
        ("acc-1", "tok\r\nX-Injected: 1", "api_token"),
        ("acc-1", "tok\n", "api_token"),
        ("acc-1", " tok", "api_token"),
        ("acc\t1", "tok", "account_id"),
        ("acc-1", "tok\x00", "api_token"),
        ("acc-1", "tøk", "api_token"),
    ],
)
def test_a_credential_with_control_characters_is_refused_where_it_is_given(
    account_id: str, api_token: str, field: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AsyncVoipNumber(account_id, api_token)

    assert caught.value.field == field
    assert api_token not in str(caught.value)


def test_rotating_to_a_token_with_a_newline_is_refused_and_the_old_one_kept() -> None:
    client = AsyncVoipNumber("acc-1", TOKEN)
    with pytest.raises(ConfigurationError) as caught:
        client.rotate_api_token("new\r\n")

    assert caught.value.field == "api_token"
    assert client._credentials.headers_with("k")["Authorization"] == f"Bearer {TOKEN}"
    assert_no_frame_holds(caught.value, "new\r\n")


async def test_closing_the_client_while_sends_wait_for_a_connection_refuses_each_unsent(
    sandbox: Sandbox,
) -> None:
    sandbox.inject(Fault.slow(0.5, times=None))
    client = AsyncVoipNumber(**sandbox.client_settings(), max_connections=2)
    sends = [asyncio.ensure_future(client.sms.send(FROM, TO, f"m{i}")) for i in range(30)]
    for _ in range(3000):  # until both connections are in use
        if sandbox.in_flight == 2:
            break
        await asyncio.sleep(0.01)

    await client.aclose()
    outcomes = await asyncio.gather(*sends, return_exceptions=True)

    unexpected = [o for o in outcomes if not isinstance(o, VoipNumberError)]
    assert unexpected == []
    closed = [o for o in outcomes if isinstance(o, ClientClosedError)]
    assert len(closed) >= 28  # all that waited for a connection: typed, and unsent
    assert all(o.attempts == 0 and not o.may_have_been_sent for o in closed)


async def test_a_bulk_run_whose_client_closes_gives_one_result_per_message(
    sandbox: Sandbox,
) -> None:
    sandbox.inject(Fault.slow(0.2, times=None))
    client = AsyncVoipNumber(**sandbox.client_settings(), max_connections=100)
    messages = [OutgoingMessage(from_=FROM, to=TO, body=f"m{i}") for i in range(400)]
    results = []
    async with client.sms.send_many(messages, concurrency=200) as run:
        async for result in run:
            results.append(result)
            if len(results) == 1:
                await client.aclose()

    assert sorted(r.index for r in results) == list(range(400))
    assert all(r.ok or isinstance(r.error, VoipNumberError) for r in results)
    assert any(isinstance(r.error, ClientClosedError) for r in results)
