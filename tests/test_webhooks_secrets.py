"""No webhook secret in the locals of a frame an exception passes through.

Error trackers record the locals of every frame of a traceback (Sentry's defaults, `rich`
tracebacks with `show_locals`, `pytest -l`): values as they are, and other objects by
their repr. These tests walk the traceback of each error `parse_inbound` and
`create_app` raise, and of the handler failure the receiver logs, the same way.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

import aiohttp
import pytest
from _support import fixture_bytes, fixture_json
from aiohttp import web

from voipnumber_async.webhooks import InboundMessage, WebhookError, create_app, parse_inbound

SECRETS = ("hook-SECRET-4f9c2e81d7", "hook-ROTATED-b0a3c55e19")
HEADERS: dict[str, str] = fixture_json("inbound-headers.json")
SMS = fixture_bytes("inbound-sms.json")
GOOD_URL = f"/webhooks/voipnumber?secret={SECRETS[0]}"


def holds_a_secret(value: object, seen: set[int] | None = None) -> bool:
    """Whether `value` shows a secret: as text or bytes, inside containers, or in its repr."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, str):
        return any(secret in value for secret in SECRETS)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return any(secret.encode() in bytes(value) for secret in SECRETS)
    if isinstance(value, dict):
        return any(holds_a_secret(k, seen) or holds_a_secret(v, seen) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return any(holds_a_secret(item, seen) for item in value)
    return holds_a_secret(repr(value), seen)


def tracebacks(error: BaseException) -> Iterator[TracebackType]:
    """Every traceback entry of `error` and of the errors chained to it, even suppressed."""
    chained: BaseException | None = error
    while chained is not None:
        entry = chained.__traceback__
        while entry is not None:
            yield entry
            entry = entry.tb_next
        chained = chained.__cause__ or chained.__context__


def sdk_frames_holding_a_secret(error: BaseException) -> list[str]:
    """The SDK's frames on `error`'s tracebacks whose locals show a secret; at least one walked."""
    walked, leaking = 0, []
    for entry in tracebacks(error):
        frame = entry.tb_frame
        if frame.f_code.co_filename == __file__:
            continue  # the test's own frames hold the secrets it passed, of course
        walked += 1
        for name, value in frame.f_locals.items():
            if holds_a_secret(value):
                leaking.append(f"{frame.f_code.co_name}: {name}")
    assert walked, "no frame of the SDK was on the traceback: nothing was checked"
    return leaking


async def ignore(message: InboundMessage) -> None:
    pass


def raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as error:
        return error
    raise AssertionError("expected an error")


def test_the_walk_finds_a_secret_held_by_a_frame() -> None:
    # The check itself must be able to fail: a frame outside this file holding a secret.
    namespace: dict[str, Any] = {}
    exec(  # a frame of another file name, as the SDK's are
        compile("def leak(held):\n    raise ValueError('no')\n", "elsewhere.py", "exec"),
        namespace,
    )
    error = raised(lambda: namespace["leak"]({"nested": [SECRETS[1].encode()]}))
    assert sdk_frames_holding_a_secret(error) == ["leak: held"]


@pytest.mark.parametrize(
    ("url", "body", "headers"),
    [
        ("/webhooks/voipnumber?secret=guess", SMS, HEADERS),  # InvalidSecretError
        ("/webhooks/voipnumber", SMS, HEADERS),  # InvalidSecretError: no secret at all
        (GOOD_URL, SMS, {**HEADERS, "Host": "evil.example"}),  # UntrustedHostError
        (GOOD_URL, SMS, {**HEADERS, "Content-Type": "text/plain"}),
        (GOOD_URL, SMS, {**HEADERS, "Content-Encoding": "br"}),
        (GOOD_URL, b" " * 70_000, HEADERS),  # PayloadTooLargeError
        (GOOD_URL, gzip.compress(b" " * 70_000), {**HEADERS, "Content-Encoding": "gzip"}),
        (GOOD_URL, b"{not json", HEADERS),  # InvalidPayloadError, chained from a ValueError
        (GOOD_URL, b"[" * 60_000, HEADERS),
        (f"/hooks/{SECRETS[1]}", b"{}", HEADERS),  # the rotated secret, in the path
    ],
)
def test_no_frame_of_a_webhook_error_holds_the_secret(
    url: str, body: bytes, headers: dict[str, str]
) -> None:
    error = raised(lambda: parse_inbound(body, headers, url=url, secret=list(SECRETS)))

    assert isinstance(error, WebhookError)
    assert sdk_frames_holding_a_secret(error) == []


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        (lambda: parse_inbound(SMS, HEADERS, url=None, secret=SECRETS[0]), TypeError),
        (lambda: parse_inbound(SMS, HEADERS, url=GOOD_URL, secret=[*SECRETS, ""]), ValueError),
        (lambda: create_app(ignore, secret=[SECRETS[0], ""]), ValueError),
    ],
)
def test_no_frame_of_a_misconfiguration_error_holds_the_secret(
    call: Callable[[], object], kind: type[Exception]
) -> None:
    error = raised(call)

    assert isinstance(error, kind)
    assert sdk_frames_holding_a_secret(error) == []


@pytest.mark.parametrize(
    ("route", "path"),
    [("/webhooks/voipnumber", "/webhooks/voipnumber?secret={}"), ("/hooks/{rest}", "/hooks/{}")],
)
async def test_the_logged_traceback_of_a_failing_handler_holds_no_secret(
    route: str, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(message: InboundMessage) -> None:
        raise RuntimeError("the database is down")

    app = create_app(failing, path=route, secret=SECRETS)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{path.format(SECRETS[1])}"
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=SMS, headers=HEADERS) as answer,
        ):
            assert answer.status == 500
    finally:
        await runner.cleanup()

    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1
    exc_info = logged[0].exc_info
    assert exc_info is not None and exc_info[1] is not None
    assert sdk_frames_holding_a_secret(exc_info[1]) == []
