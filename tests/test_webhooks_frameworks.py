"""The receivers for aiohttp, Django, Flask, Starlette and FastAPI: one behaviour, five adapters.

Each is driven by its framework's own test client (Django's under its default
middleware, CSRF checks enforced), with the documented headers and bodies. The blocking
clients run in a worker thread, as their servers would run them, off the test's loop.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import re
import sys
import threading
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
from _support import fixture_bytes, fixture_json
from test_telemetry import Recorded, otel  # noqa: F401 - otel is a fixture

from voipnumber_async.webhooks import InboundMessage, MemoryDeliveryStore, parse_inbound
from voipnumber_async.webhooks._delivery import (
    Answer,
    Checks,
    Receiving,
    deliver,
)
from voipnumber_async.webhooks._store import SyncMemoryDeliveryStore

SECRET = "s3cr3t-0f-the-frameworks"
HEADERS: dict[str, str] = fixture_json("inbound-headers.json")
SMS = fixture_bytes("inbound-sms.json")
MESSAGE = parse_inbound(SMS, HEADERS)
HOOK = f"/webhooks/voipnumber?secret={SECRET}"
ADAPTERS = ["aiohttp", "django", "flask", "starlette", "fastapi"]
BLOCKING = {"django", "flask"}

# Starlette 1.x would rather have its TestClient on httpx2; the floor (0.37) needs httpx.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

Post = Callable[..., Awaitable[tuple[int, bytes]]]


class Recorder:
    """A handler that records what it got, or fails on demand; in both kinds."""

    def __init__(self) -> None:
        self.handled: list[InboundMessage] = []
        self.fail_next = 0

    def take(self, message: InboundMessage) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the database is down")
        self.handled.append(message)

    async def take_async(self, message: InboundMessage) -> None:
        self.take(message)


# --- Django: configured once, with the middleware `startproject` writes ---------------------

DEFAULT_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
URLS = types.ModuleType("voipnumber_test_webhook_urls")
URLS.urlpatterns = []  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def django_configured() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        sys.modules[URLS.__name__] = URLS
        settings.configure(
            DEBUG=False,
            SECRET_KEY="not-a-secret-" * 4,
            ALLOWED_HOSTS=["api.voipnumber.net", "testserver"],
            ROOT_URLCONF=URLS.__name__,
            MIDDLEWARE=DEFAULT_MIDDLEWARE,
            INSTALLED_APPS=[
                "django.contrib.auth",
                "django.contrib.contenttypes",
                "django.contrib.sessions",
                "django.contrib.messages",
            ],
            DATABASES={},
        )
        django.setup()


def route_in_django(pattern: str, view: Callable[..., Any]) -> None:
    from django.urls import clear_url_caches, path

    URLS.urlpatterns = [path(pattern, view)]  # type: ignore[attr-defined]
    clear_url_caches()


def django_post(path: str, body: bytes, headers: Mapping[str, str], **environ: Any) -> Any:
    from django.test import Client

    rest = {name: value for name, value in headers.items() if name.lower() != "content-type"}
    client = Client(enforce_csrf_checks=True)
    # CONTENT_TYPE set whatever the body: the client leaves it out of an empty request.
    environ.setdefault("CONTENT_TYPE", headers.get("Content-Type", ""))
    return client.generic("POST", path, body, headers=rest, **environ)


# --- one receiver per framework, at the same URL, answering through its own test client -----


@asynccontextmanager
async def serving(
    kind: str, recorder: Recorder, route: str = "/webhooks/voipnumber", **settings: Any
) -> AsyncIterator[Post]:
    """A receiver of `kind` for `recorder` at `route`; yields `post(path, body, headers)`."""
    settings.setdefault("secret", SECRET)
    handler: Any = recorder.take if kind in BLOCKING else recorder.take_async
    if kind == "aiohttp":
        from aiohttp.test_utils import TestClient, TestServer

        from voipnumber_async.webhooks import create_app

        async with TestClient(TestServer(create_app(handler, path=route, **settings))) as client:

            async def post_aiohttp(
                path: str, body: bytes, headers: Mapping[str, str], **_: Any
            ) -> tuple[int, bytes]:
                async with client.post(path, data=body, headers=dict(headers)) as answer:
                    return answer.status, await answer.read()

            yield post_aiohttp
        return

    if kind == "django":
        from voipnumber_async.webhooks.django import webhook_view

        route_in_django(route.lstrip("/").replace("{secret}", "<str:secret>"),
                        webhook_view(handler, **settings))  # fmt: skip

        def send(path: str, body: bytes, headers: Mapping[str, str], **environ: Any) -> Any:
            answer = django_post(path, body, headers, **environ)
            return answer.status_code, answer.content

    elif kind == "flask":
        from flask import Flask

        from voipnumber_async.webhooks.flask import webhook_view as flask_view

        app = Flask(__name__)
        app.add_url_rule(
            route.replace("{secret}", "<secret>"), view_func=flask_view(handler, **settings)
        )
        flask_client = app.test_client()

        def send(path: str, body: bytes, headers: Mapping[str, str], **environ: Any) -> Any:
            if environ.pop("chunked", False):
                answer = flask_client.post(
                    path,
                    input_stream=io.BytesIO(body),
                    headers={**headers, "Transfer-Encoding": "chunked"},
                    environ_overrides=environ,
                )
            else:
                answer = flask_client.post(path, data=body, headers=dict(headers))
            return answer.status_code, answer.data

    else:
        from starlette.testclient import TestClient as StarletteClient

        from voipnumber_async.webhooks.starlette import webhook_endpoint, webhook_route

        if kind == "starlette":
            from starlette.applications import Starlette

            asgi: Any = Starlette(routes=[webhook_route(route, handler, **settings)])
        else:
            from fastapi import FastAPI

            asgi = FastAPI()
            asgi.add_api_route(route, webhook_endpoint(handler, **settings), methods=["POST"])
        asgi_client = StarletteClient(asgi)

        def send(path: str, body: bytes, headers: Mapping[str, str], **environ: Any) -> Any:
            if environ.pop("chunked", False):
                content: Any = iter([body[:10], body[10:]])  # no length: sent chunked
            else:
                content = body
            answer = asgi_client.post(path, content=content, headers=dict(headers))
            return answer.status_code, answer.content

    async def post_blocking(
        path: str, body: bytes, headers: Mapping[str, str], **environ: Any
    ) -> tuple[int, bytes]:
        # A thread with no event loop, as a WSGI server's (Django refuses some work in one
        # that has a loop).
        status, content = await asyncio.to_thread(send, path, body, headers, **environ)
        return int(status), bytes(content)

    yield post_blocking


@pytest.fixture(params=ADAPTERS)
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "django":
        request.getfixturevalue("django_configured")
    return str(request.param)


@pytest.fixture
async def receiver(kind: str) -> AsyncIterator[tuple[Recorder, Post]]:
    recorder = Recorder()
    async with serving(kind, recorder) as post:
        yield recorder, post


# --- the behaviour, the same through each ----------------------------------------------------


async def test_a_delivery_reaches_the_handler_once_and_is_answered_200(
    receiver: tuple[Recorder, Post],
) -> None:
    recorder, post = receiver

    status, answer = await post(HOOK, SMS, HEADERS)

    assert (status, json.loads(answer)) == (200, {"status": "accepted", "mdr_id": MESSAGE.mdr_id})
    assert recorder.handled == [MESSAGE]


async def test_a_redelivery_is_a_duplicate_and_reaches_the_handler_once(
    receiver: tuple[Recorder, Post],
) -> None:
    recorder, post = receiver

    first = await post(HOOK, SMS, HEADERS)
    again = await post(HOOK, SMS, HEADERS)

    assert (first[0], again[0]) == (200, 200)
    assert json.loads(again[1])["status"] == "duplicate"
    assert recorder.handled == [MESSAGE]


async def test_a_handler_that_raises_gets_a_500_and_the_redelivery_reaches_it_again(
    receiver: tuple[Recorder, Post],
) -> None:
    recorder, post = receiver
    recorder.fail_next = 1

    failed = await post(HOOK, SMS, HEADERS)
    retried = await post(HOOK, SMS, HEADERS)

    assert (failed[0], json.loads(failed[1])["error"]) == (500, "handler_failed")
    assert (retried[0], json.loads(retried[1])["status"]) == (200, "accepted")
    assert recorder.handled == [MESSAGE]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error", "says"),
    [
        ("/webhooks/voipnumber?secret=guess", SMS, HEADERS, 403, "invalid_secret", "secret"),
        ("/webhooks/voipnumber", SMS, HEADERS, 403, "invalid_secret", "secret"),
        (HOOK, SMS, {**HEADERS, "Host": "evil.example"}, 403, "untrusted_host", "evil.example"),
        (HOOK, b"{bad", HEADERS, 400, "invalid_payload", "not JSON"),
        (HOOK, b"", HEADERS, 400, "invalid_payload", "empty body"),
        (HOOK, b" " * 70_000, HEADERS, 413, "payload_too_large", "limit"),
        (HOOK, SMS, {**HEADERS, "Content-Type": "text/plain"}, 415, "unsupported_content_type",
         "text/plain"),
        (HOOK, SMS, {**HEADERS, "Content-Encoding": "br"}, 415, "unsupported_content_type", "br"),
    ],
    ids=["wrong-secret", "no-secret", "wrong-host", "not-json", "empty", "too-large",
         "not-json-type", "brotli"],
)  # fmt: skip
async def test_a_bad_delivery_is_refused_with_its_status_and_reason(
    receiver: tuple[Recorder, Post],
    kind: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    error: str,
    says: str,
) -> None:
    recorder, post = receiver
    if kind == "django" and error == "untrusted_host":
        # Django itself answers a Host outside ALLOWED_HOSTS 400, before any view (see the
        # test of that below): one it admits, which the service does not send, reaches ours.
        headers, says = {**headers, "Host": "testserver"}, "testserver"

    answer_status, answer = await post(path, body, headers)

    refusal = json.loads(answer)
    assert (answer_status, refusal["error"]) == (status, error)
    assert says in refusal["message"]
    assert SECRET not in refusal["message"]
    assert recorder.handled == []


async def test_a_gzipped_body_is_inflated_by_the_sdk(receiver: tuple[Recorder, Post]) -> None:
    recorder, post = receiver

    status, _ = await post(HOOK, gzip.compress(SMS), {**HEADERS, "Content-Encoding": "gzip"})

    assert status == 200
    assert recorder.handled == [MESSAGE]


async def test_the_secret_may_be_a_route_variable_checked_by_the_sdk(kind: str) -> None:
    recorder = Recorder()
    async with serving(kind, recorder, route="/hooks/{secret}") as post:
        accepted = await post(f"/hooks/{SECRET}", SMS, HEADERS)
        refused = await post("/hooks/guess", SMS, HEADERS)

    assert (accepted[0], refused[0]) == (200, 403)
    assert recorder.handled == [MESSAGE]


@pytest.mark.parametrize("kind", ["django", "flask", "starlette", "fastapi"])
async def test_a_chunked_body_the_server_de_chunked_is_received(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "django":
        request.getfixturevalue("django_configured")
    recorder = Recorder()
    # WSGI: the server de-chunks and says so (`wsgi.input_terminated`), as gunicorn does;
    # ASGI servers always de-chunk.
    environ = (
        {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked",
         "wsgi.input": io.BytesIO(SMS), "wsgi.input_terminated": True}
        if kind == "django" else {"chunked": True, "wsgi.input_terminated": True}
    )  # fmt: skip
    async with serving(kind, recorder) as post:
        status, _ = await post(HOOK, SMS, HEADERS, **environ)

    assert status == 200
    assert recorder.handled == [MESSAGE]


@pytest.mark.parametrize("kind", ["django", "flask"])
async def test_a_chunked_body_the_server_did_not_de_chunk_is_reported_as_such(
    kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "django":
        request.getfixturevalue("django_configured")
    recorder = Recorder()
    environ = (
        {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(SMS)}
        if kind == "django" else {"chunked": True}
    )  # fmt: skip
    async with serving(kind, recorder) as post:
        status, answer = await post(HOOK, SMS, HEADERS, **environ)

    assert status == 400
    assert (
        "empty body (chunked request the server did not de-chunk)" in json.loads(answer)["message"]
    )
    assert recorder.handled == []


# --- Django's defaults -----------------------------------------------------------------------


@pytest.mark.usefixtures("django_configured")
def test_under_djangos_default_middleware_a_plain_view_gets_403_and_webhook_view_does_not() -> None:
    from django.http import HttpRequest, HttpResponse

    from voipnumber_async.webhooks.django import webhook_view

    def plain(request: HttpRequest) -> HttpResponse:  # the recipe docs/webhooks.md had
        return HttpResponse("ok")

    route_in_django("webhooks/voipnumber", plain)
    assert django_post(HOOK, SMS, HEADERS).status_code == 403  # CsrfViewMiddleware

    route_in_django("webhooks/voipnumber", webhook_view(Recorder().take, secret=SECRET))
    assert django_post(HOOK, SMS, HEADERS).status_code == 200


@pytest.mark.usefixtures("django_configured")
def test_a_host_django_does_not_admit_is_refused_when_the_view_is_made() -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from voipnumber_async.webhooks.django import webhook_view

    with (
        override_settings(ALLOWED_HOSTS=["shop.example"]),
        pytest.raises(
            ImproperlyConfigured, match=re.escape("add 'api.voipnumber.net' to ALLOWED_HOSTS")
        ),
    ):
        webhook_view(Recorder().take, secret=SECRET)
    with override_settings(ALLOWED_HOSTS=[".voipnumber.net"]):
        webhook_view(Recorder().take, secret=SECRET)  # a pattern that admits it
    with override_settings(ALLOWED_HOSTS=["shop.example"]):
        webhook_view(Recorder().take, secret=SECRET, expected_host=None)  # nothing to check


@pytest.mark.usefixtures("django_configured")
def test_without_the_host_in_allowed_hosts_django_would_answer_400() -> None:
    from django.http import HttpRequest, HttpResponse
    from django.test import override_settings
    from django.views.decorators.csrf import csrf_exempt

    @csrf_exempt
    def plain(request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")

    route_in_django("webhooks/voipnumber", plain)
    with override_settings(ALLOWED_HOSTS=["shop.example"]):
        assert django_post(HOOK, SMS, HEADERS).status_code == 400  # DisallowedHost


@pytest.mark.parametrize("kind", ADAPTERS[1:])
async def test_anything_but_post_is_answered_405(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "django":
        request.getfixturevalue("django_configured")
    async with serving(kind, Recorder()):
        pass
    if kind == "django":
        from django.test import Client

        status = await asyncio.to_thread(lambda: Client().get(HOOK).status_code)
    elif kind == "flask":
        from flask import Flask

        from voipnumber_async.webhooks.flask import webhook_view

        app = Flask(__name__)
        app.add_url_rule("/webhooks/voipnumber", view_func=webhook_view(Recorder().take))
        status = app.test_client().get(HOOK).status_code
    else:
        from starlette.applications import Starlette
        from starlette.testclient import TestClient

        from voipnumber_async.webhooks.starlette import webhook_route

        route = webhook_route("/webhooks/voipnumber", Recorder().take_async)
        status = await asyncio.to_thread(
            lambda: TestClient(Starlette(routes=[route])).get(HOOK).status_code
        )
    assert status == 405


# --- what each accepts when it is made --------------------------------------------------------


def factories() -> Iterator[Any]:
    yield pytest.param("django", "voipnumber_async.webhooks.django", "webhook_view", id="django")
    yield pytest.param("flask", "voipnumber_async.webhooks.flask", "webhook_view", id="flask")
    yield pytest.param(
        "starlette", "voipnumber_async.webhooks.starlette", "webhook_endpoint", id="starlette"
    )


def factory(kind: str, module: str, name: str, request: pytest.FixtureRequest) -> Any:
    import importlib

    if kind == "django":
        request.getfixturevalue("django_configured")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(("kind", "module", "name"), list(factories()))
def test_a_handler_of_the_wrong_kind_is_refused_when_the_receiver_is_made(
    kind: str, module: str, name: str, request: pytest.FixtureRequest
) -> None:
    make = factory(kind, module, name, request)
    wrong = Recorder().take_async if kind in BLOCKING else Recorder().take

    with pytest.raises(TypeError, match="async def" if kind == "starlette" else "plain function"):
        make(wrong)


@pytest.mark.parametrize(("kind", "module", "name"), list(factories()))
@pytest.mark.parametrize("secret", ["", ["ok", ""]])
def test_an_empty_secret_is_refused_when_the_receiver_is_made(
    kind: str, module: str, name: str, secret: Any, request: pytest.FixtureRequest
) -> None:
    make = factory(kind, module, name, request)
    handler = Recorder().take if kind in BLOCKING else Recorder().take_async

    with pytest.raises(ValueError, match="empty secret"):
        make(handler, secret=secret)


# --- the outcome, as a value ------------------------------------------------------------------


async def outcome_of(
    body: bytes,
    *,
    url: str = HOOK,
    handler: Callable[[InboundMessage], Awaitable[None]] | None = None,
    store: MemoryDeliveryStore | None = None,
    read: Callable[[], Awaitable[bytes]] | None = None,
) -> Answer:
    checks = Checks.of(
        secret=SECRET, secret_param="secret", expected_host="api.voipnumber.net", max_bytes=65536
    )
    assert isinstance(checks, Checks)

    async def nothing(message: InboundMessage) -> None:
        pass

    async def read_body() -> bytes:
        return body

    receiving = Receiving(
        checks, handler or nothing, store if store is not None else MemoryDeliveryStore()
    )
    return await deliver(receiving, url, HEADERS, read or read_body)


async def test_deliver_says_what_became_of_each_delivery() -> None:
    store = MemoryDeliveryStore()

    async def failing(message: InboundMessage) -> None:
        raise RuntimeError("down")

    async def hang_up() -> bytes:
        raise ConnectionResetError

    accepted = await outcome_of(SMS, store=store)
    duplicate = await outcome_of(SMS, store=store)
    refused = await outcome_of(SMS, url="/webhooks/voipnumber?secret=guess")
    failed = await outcome_of(SMS, handler=failing)
    hung_up = await outcome_of(SMS, read=hang_up)
    await store.release(MESSAGE.mdr_id)
    await store.claim(MESSAGE.mdr_id)
    in_progress = await outcome_of(SMS, store=store)

    assert [(a.outcome, a.status, a.reason) for a in (accepted, duplicate, refused)] == [
        ("accepted", 200, None),
        ("duplicate", 200, None),
        ("refused", 403, "invalid_secret"),
    ]
    assert [(a.outcome, a.status) for a in (failed, hung_up, in_progress)] == [
        ("handler_failed", 500),
        ("hung_up", 400),
        ("in_progress", 409),
    ]
    assert accepted.mdr_id == MESSAGE.mdr_id and refused.mdr_id is None
    assert hung_up.body == b""
    assert json.loads(accepted.body) == {"status": "accepted", "mdr_id": MESSAGE.mdr_id}


def test_the_blocking_memory_store_gives_one_claim_to_one_of_many_threads() -> None:
    store = SyncMemoryDeliveryStore()
    start = threading.Barrier(8)
    claims: list[str] = []

    def claim() -> None:
        start.wait()
        claims.append(store.claim("mdr-raced"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(claims) == ["in_progress"] * 7 + ["new"]


# --- no secret on a traceback ----------------------------------------------------------------


async def test_the_logged_traceback_of_a_failing_handler_holds_no_secret(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    from test_webhooks_secrets import SECRETS, sdk_frames_holding_a_secret

    recorder = Recorder()
    recorder.fail_next = 1
    async with serving(kind, recorder, secret=list(SECRETS)) as post:
        status, _ = await post(f"/webhooks/voipnumber?secret={SECRETS[1]}", SMS, HEADERS)

    assert status == 500
    (logged,) = [record for record in caplog.records if record.exc_info]
    assert logged.exc_info is not None and logged.exc_info[1] is not None
    assert sdk_frames_holding_a_secret(logged.exc_info[1]) == []


@pytest.mark.parametrize(("kind", "module", "name"), list(factories()))
def test_no_frame_of_a_misconfiguration_error_holds_the_secret(
    kind: str, module: str, name: str, request: pytest.FixtureRequest
) -> None:
    import functools

    from test_webhooks_secrets import SECRETS, raised, sdk_frames_holding_a_secret

    make = factory(kind, module, name, request)
    handler = Recorder().take if kind in BLOCKING else Recorder().take_async
    # A partial, not a lambda: a lambda here would hold the secret itself.
    error = raised(functools.partial(make, handler, secret=[SECRETS[0], ""]))

    assert isinstance(error, ValueError)
    assert sdk_frames_holding_a_secret(error) == []


# --- telemetry: one span per delivery, whatever the framework --------------------------------


async def test_each_delivery_is_a_span_with_its_outcome_current_while_the_handler_runs(
    kind: str,
    otel: Recorded,  # noqa: F811 - the fixture imported above
) -> None:
    from opentelemetry import trace

    recorder = Recorder()
    in_span: list[bool] = []
    take = recorder.take

    def take_in_span(message: InboundMessage) -> None:
        in_span.append(trace.get_current_span().is_recording())
        take(message)

    recorder.take = take_in_span  # type: ignore[method-assign]
    async with serving(kind, recorder) as post:
        await post(HOOK, SMS, HEADERS)
        await post(HOOK, SMS, HEADERS)
        await post("/webhooks/voipnumber?secret=guess", SMS, HEADERS)

    spans = otel.spans("voipnumber.webhook.receive")
    assert [(s.attributes or {}).get("voipnumber.outcome") for s in spans] == [
        "accepted",
        "duplicate",
        "refused",
    ]
    assert (spans[2].attributes or {})["voipnumber.webhook.reason"] == "invalid_secret"
    assert in_span == [True]
    assert otel.count("voipnumber.webhook.accepted") == 1
    assert otel.count("voipnumber.webhook.duplicates") == 1
