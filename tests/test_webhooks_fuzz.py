"""Anything at all gets an `InboundMessage` or a `WebhookError`, and over HTTP a 2xx or a 4xx.

A delivery is input from the network: whatever its bytes and headers, the receiver must
answer with the reason (4xx), never with a 500 that makes the service redeliver a poison
delivery for ever. The examples are few enough to keep this file a few seconds long;
the explicit regressions for what fuzzing found live in test_webhooks_parse.py.
"""

from __future__ import annotations

import gzip
import json
import string
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from _support import fixture_json
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voipnumber_async.webhooks import InboundMessage, WebhookError, create_app, parse_inbound

SMS_JSON: dict[str, Any] = fixture_json("inbound-sms.json")
HEADERS: dict[str, str] = fixture_json("inbound-headers.json")
FIELDS = list(SMS_JSON)
SECRET = "fuzz-s3cr3t"

# --- bodies: arbitrary bytes, near-deliveries, and both compressed --------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
dates = st.builds(
    "{} {} {} {}:{}:{}".format,
    st.integers(-5, 40),
    st.sampled_from(["May", "may", "Nov", "November", "Mai", ""]),
    st.one_of(st.integers(-10, 10_000), st.just(10**20)),
    st.integers(-1, 61),
    st.integers(-1, 61),
    st.integers(-1, 61),
)
near_deliveries = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(json_values, st.just(SMS_JSON[name]))
        | (dates if name == "mdr_created" else st.nothing())
        for name in FIELDS
    },
).map(lambda data: json.dumps(data).encode())
plain_bodies = (
    st.binary(max_size=300)
    | near_deliveries
    | st.integers(1, 70_000).map(lambda n: b"[" * n)
    | st.just(json.dumps(SMS_JSON).encode())
)
bodies = plain_bodies | plain_bodies.map(gzip.compress) | plain_bodies.map(zlib.compress)

# --- headers: the ones that matter, with arbitrary values, and arbitrary others -------------

charsets = st.sampled_from(
    ["utf-8", "UTF-16", "latin-1", "rot13", "undefined", "base64", "zlib", "utf\x008", "idna",
     "unicode_escape", "punycode", "klingon", "", '"utf-8"']
) | st.text(max_size=12)  # fmt: skip
content_types = (
    st.builds(
        "{}; {}={}".format,
        st.sampled_from(["application/json", "Application/JSON", "text/plain", ""]),
        st.sampled_from(["charset", "Charset", "x"]),
        charsets,
    )
    | st.just("application/json")
    | st.text(max_size=30)
)
codings = st.sampled_from(
    ["gzip", "x-gzip", "deflate", "identity", "br", "zstd", "compress", "gzip, gzip", "", ","]
) | st.text(max_size=12)  # fmt: skip
hosts = st.sampled_from(["api.voipnumber.net", "API.voipnumber.net:443", "evil", ""]) | st.text(
    max_size=20
)
known_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": content_types,
        "Content-Encoding": codings,
        "Host": hosts,
        "X-Forwarded-Host": hosts | st.builds("{}, {}".format, hosts, hosts),
    },
)
header_maps = st.builds(
    lambda known, other, base: {**(HEADERS if base else {}), **known, **other},
    known_headers,
    st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=3),
    st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(
    body=bodies,
    headers=header_maps,
    url=st.none() | st.text(max_size=40) | st.just(f"/hook?secret={SECRET}"),
    secret=st.none() | st.text(min_size=1, max_size=10) | st.just(SECRET),
)
def test_parse_inbound_gives_a_message_or_a_webhook_error(
    body: bytes, headers: dict[str, str], url: str | None, secret: str | None
) -> None:
    try:
        result = parse_inbound(body, headers, url=url or "/", secret=secret)
    except WebhookError as error:
        assert error.http_status in (400, 403, 413, 415)
    else:
        assert isinstance(result, InboundMessage)


# --- the same over HTTP, through create_app -----------------------------------------------

#: What HTTP/1.1 can carry in a header: a token for the name, visible text for the value.
token_names = st.text(alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1)
field_values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(str.strip)
#: Headers that frame the request itself, which the client sets: fuzzing them tests aiohttp.
FRAMING = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "upgrade", "expect", "te")
)
http_known_headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": content_types.filter(lambda v: v == v.strip() and v.isprintable()),
        "Content-Encoding": codings.filter(lambda v: v == v.strip() and v.isprintable()),
        "X-Forwarded-Host": field_values,
    },
)
http_headers = st.builds(
    lambda known, other: {**HEADERS, **known, **other},
    http_known_headers,
    st.dictionaries(
        token_names.filter(lambda n: n.lower() not in FRAMING), field_values, max_size=3
    ),
)


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def noop(message: InboundMessage) -> None:
        pass

    app = create_app(noop, path="/hooks/{rest:.*}", secret=SECRET, expected_host=None)
    async with TestClient(TestServer(app)) as running:
        yield running


@settings(
    max_examples=150,
    deadline=None,
    # One server for every example is the point: it is the state of a running receiver.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies,
    headers=http_headers,
    path=st.sampled_from([f"/hooks/{SECRET}", f"/hooks/in?secret={SECRET}", "/hooks/in"]),
    chunked=st.booleans(),
)
async def test_create_app_answers_a_2xx_or_a_4xx_never_a_5xx(
    client: TestClient[web.Request, web.Application],
    body: bytes,
    headers: dict[str, str],
    path: str,
    chunked: bool,
) -> None:
    async def streamed() -> AsyncIterator[bytes]:
        yield body

    # A body either of known length, or chunked (aiohttp drops a Content-Length then).
    data: Any = streamed() if chunked else body
    try:
        answer = await client.post(path, data=data, headers=headers)
    except aiohttp.ClientError as error:  # pragma: no cover - to say what happened
        raise AssertionError(f"the receiver dropped the connection: {error!r}") from error
    async with answer:
        assert 200 <= answer.status < 300 or 400 <= answer.status < 500, await answer.text()
