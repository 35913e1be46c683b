"""Over real HTTP, the receiver answers each delivery as `parse_inbound`'s verdict says.

`create_app` runs `parse_inbound`'s own checks in two steps (the URL and headers, then
the body once read) on what aiohttp hands it: the raw path and query, and its multidict
of headers. These tests hold its answers to `parse_inbound`'s on the same bytes, so a
difference in what aiohttp hands over (decoded paths, repeated headers) shows.
"""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import pytest
from _support import fixture_bytes, fixture_json
from aiohttp import web
from yarl import URL

from voipnumber_async.webhooks import (
    InboundMessage,
    MemoryDeliveryStore,
    WebhookError,
    create_app,
    parse_inbound,
)

SECRET = "s3cr3t x"  # a space: its query forms are `+` and `%20`
HEADERS: dict[str, str] = fixture_json("inbound-headers.json")
SMS = fixture_bytes("inbound-sms.json")


def expected_status(path: str, headers: dict[str, str], body: bytes = SMS) -> int:
    try:
        parse_inbound(body, headers, url=path, secret=SECRET)
    except WebhookError as error:
        assert error.http_status is not None
        return error.http_status
    return 200


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    async def noop(message: InboundMessage) -> None:
        pass

    # A fresh mdr_id is not needed: a redelivery of a handled one is also answered 200.
    app = create_app(noop, path="/hooks/{rest:.*}", secret=SECRET)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def status_of(base_url: str, path: str, headers: dict[str, str], body: bytes = SMS) -> int:
    async with (
        aiohttp.ClientSession() as session,
        # encoded=True: the path goes on the wire byte for byte as written here.
        session.post(URL(base_url + path, encoded=True), data=body, headers=headers) as answer,
    ):
        return answer.status


@pytest.mark.parametrize(
    "path",
    [
        "/hooks/in?secret=s3cr3t+x",
        "/hooks/in?secret=s3cr3t%20x",
        "/hooks/in?a=1&secret=nope&secret=s3cr3t+x",
        "/hooks/in?secret=s3cr3t",
        "/hooks/in?Secret=s3cr3t+x",
        "/hooks/s3cr3t%20x",
        "/hooks/in",
        "/hooks//s3cr3t%20x",
        "/hooks/in?secret=",
    ],
)
async def test_the_secret_verdict_is_parse_inbounds(base_url: str, path: str) -> None:
    assert await status_of(base_url, path, HEADERS) == expected_status(path, HEADERS)


@pytest.mark.parametrize(
    "changes",
    [
        {"content-type": "application/json"},
        {"CONTENT-TYPE": "Application/JSON; Charset=UTF-8"},
        {"Content-Type": "application/json;charset=utf-8"},
        {"Content-Type": "application/json; charset=latin-1"},
        {"Content-Type": "application/json; charset=klingon"},
        {"Content-Type": "text/json"},
        {"Host": "API.VOIPNUMBER.NET:443"},
        {"Host": "hooks.example.com", "x-forwarded-host": "api.voipnumber.net, proxy.internal"},
        {"Host": "api.voipnumber.net", "X-Forwarded-Host": "evil.example"},
        {"Host": "evil.example"},
    ],
)
async def test_the_header_verdicts_are_parse_inbounds(
    base_url: str, changes: dict[str, str]
) -> None:
    path = "/hooks/in?secret=s3cr3t+x"
    # Replace the fixture's header of the same name, whatever the case it is spelled in.
    headers = {k: v for k, v in HEADERS.items() if k.lower() not in {c.lower() for c in changes}}
    headers |= changes

    assert await status_of(base_url, path, headers) == expected_status(path, headers)


BOMB = gzip.compress(b" " * (1024 * 1024))


@pytest.mark.parametrize(
    ("changes", "body"),
    [
        ({"Content-Encoding": "gzip"}, gzip.compress(SMS)),
        ({"Content-Encoding": "GZIP"}, gzip.compress(SMS)),
        ({"Content-Encoding": "x-gzip"}, gzip.compress(SMS)),
        ({"Content-Encoding": "gzip"}, gzip.compress(SMS)[:-4]),
        ({"Content-Encoding": "gzip"}, BOMB),
        ({"Content-Encoding": "gzip"}, SMS),
        ({"Content-Encoding": "br"}, SMS),
        ({"Content-Encoding": "zstd"}, SMS),
        ({"Content-Encoding": "identity"}, SMS),
        ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gzip.compress(SMS))),
        ({"Content-Type": "application/json; charset=rot13"}, SMS),
        ({"Content-Type": "application/json; charset=utf-16"}, SMS.decode().encode("utf-16")),
        ({"Content-Type": "application/json; charset=utf-16"}, SMS),
        ({}, b"[" * 60_000),
        ({}, b" " * 70_000),
    ],
)
async def test_the_body_verdicts_are_parse_inbounds(
    base_url: str, changes: dict[str, str], body: bytes
) -> None:
    path = "/hooks/in?secret=s3cr3t+x"
    headers = {**HEADERS, **changes}

    assert await status_of(base_url, path, headers, body) == expected_status(path, headers, body)


async def test_an_entry_outlives_the_release_of_an_older_one_until_its_own_ttl() -> None:
    now = [0.0]
    store = MemoryDeliveryStore(ttl_s=60, clock=lambda: now[0])
    await store.claim("older")
    now[0] = 30.0
    await store.claim("newer")
    await store.complete("newer")
    await store.release("older")

    now[0] = 61.0  # past the released entry's expiry, which must not take "newer" with it
    assert await store.claim("other") == "new"
    assert await store.claim("newer") == "done"
    now[0] = 91.0
    assert await store.claim("newer") == "new"
    assert len(store) == 2  # "other" (written at 61, until 121) and "newer" claimed anew
