"""Receive deliveries in Django: `webhook_view(handler, ...)`, a view for your URLconf.

```py
# urls.py
from django.urls import path
from voipnumber_async.webhooks.django import webhook_view

urlpatterns = [
    path("webhooks/voipnumber", webhook_view(save_message, secret=settings.WEBHOOK_SECRET)),
]
```

It does what `create_app` does, under Django's default middleware: checks the secret
and the headers, parses the body, deduplicates redeliveries, calls `handler` once per
message, and answers the service. Importing this module imports Django; nothing else
in the SDK does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.http.request import validate_host
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .._errors import PayloadTooLargeError
from .._wire.inbound import WEBHOOK_HOST
from ._body import DEFAULT_MAX_WEBHOOK_BYTES, check_size
from ._delivery import (
    BlockingHandler,
    BlockingReceiving,
    Checks,
    deliver_blocking,
    is_async_callable,
    read_capped,
)
from ._parse import DEFAULT_SECRET_PARAM
from ._store import SyncDeliveryStore, SyncMemoryDeliveryStore

__all__ = ["webhook_view"]

#: What Django admits when DEBUG is on and ALLOWED_HOSTS is empty (`HttpRequest.get_host`).
_DEBUG_HOSTS = (".localhost", "127.0.0.1", "[::1]")


def webhook_view(
    handler: BlockingHandler,
    *,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
    store: SyncDeliveryStore | None = None,
) -> Callable[..., HttpResponse]:
    """A Django view that receives the service's deliveries and hands each to `handler`.

    The answers are `create_app`'s: 200 once `handler` returned (and for a redelivery
    of a message already handled, without calling it again), 400/403/413/415 for a
    delivery that fails a check, 409 while another delivery of the same message is
    being handled, 500 when `handler` raised (the next delivery reaches it again).
    Anything but POST is answered 405.

    Django's default middleware would refuse every delivery, and this view is made so
    that it does not:

    - `CsrfViewMiddleware` answers a POST without a CSRF token 403: the view is
      `csrf_exempt` (the secret in the URL is what authenticates the service);
    - `HttpRequest.get_host` answers 400 (`DisallowedHost`) for a Host that
      `ALLOWED_HOSTS` does not admit, and the service sends `Host: api.voipnumber.net`:
      so `ALLOWED_HOSTS` is checked here, when the view is made.

    A body sent chunked (without a Content-Length) is read from `wsgi.input` when the
    server says it de-chunked it (`wsgi.input_terminated`, as gunicorn does); Django
    itself hands such a body over empty, and a server that does not de-chunk gets
    the answer "empty body (chunked request the server did not de-chunk)".

    Args:
        handler: A plain function (not `async def`), called with each new
            `InboundMessage`; store or queue it, and raise if you cannot. Django
            runs it in the thread serving the request, under WSGI and ASGI alike.
        secret: The shared secret the webhook URL must carry (recommended), as a query
            parameter or a path segment (a route variable such as `<str:secret>` is
            fine: it is compared in constant time here, not matched by the router).
            Or several, any of which is accepted, to rotate it.
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check (and the
            check of `ALLOWED_HOSTS`).
        max_bytes: The largest body accepted, as sent and once inflated.
        store: Remembers handled `mdr_id`s; default a `SyncMemoryDeliveryStore` (this
            process only). With several worker processes, pass one over your database.

    Raises:
        ImproperlyConfigured: `settings.ALLOWED_HOSTS` does not admit a host of
            `expected_host`; the message says what to add.
        TypeError: `handler` is an `async def` (use `voipnumber_async.webhooks.starlette`
            or `create_app` for one).
        ValueError: `secret` is empty or holds an empty one, or `expected_host` names
            no host.
    """
    checks = Checks.of(
        secret=secret, secret_param=secret_param, expected_host=expected_host, max_bytes=max_bytes
    )
    del secret  # out of this frame's locals before anything is raised
    if isinstance(checks, ValueError):
        raise checks
    if is_async_callable(handler):
        raise TypeError(
            f"webhook_view needs a plain function as its handler, not the async {handler!r}: "
            "a Django view calls it in a thread with no event loop (for an async handler, "
            "use voipnumber_async.webhooks.starlette or create_app)"
        )
    _check_allowed_hosts(checks.allowed)
    receiving = BlockingReceiving(
        checks, handler, store if store is not None else SyncMemoryDeliveryStore()
    )

    @csrf_exempt
    @require_POST
    def voipnumber_webhook(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # A secret in the path comes as a route variable: it is checked from the URL.
        del args, kwargs
        answer = deliver_blocking(
            receiving,
            request.get_full_path(),
            request.headers,
            lambda: _read_body(request, max_bytes),
        )
        return HttpResponse(answer.body, status=answer.status, content_type="application/json")

    return voipnumber_webhook


def _check_allowed_hosts(expected: frozenset[str] | None) -> None:
    """Refuse, now, the settings under which Django would answer every delivery 400."""
    if expected is None:
        return
    admitted = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not admitted:
        admitted = list(_DEBUG_HOSTS)
    refused = sorted(host for host in expected if not validate_host(host, admitted))
    if refused:
        raise ImproperlyConfigured(
            f"settings.ALLOWED_HOSTS does not admit {', '.join(map(repr, refused))}, the Host "
            "the service sends with each delivery, so Django would answer every delivery 400 "
            f"(DisallowedHost): add {refused[0]!r} to ALLOWED_HOSTS (or pass expected_host= "
            "the Host your deliveries carry, if a proxy rewrites it)"
        )


def _read_body(request: HttpRequest, max_bytes: int) -> bytes:
    """The body as sent, held to `max_bytes` before Django reads it."""
    length = request.META.get("CONTENT_LENGTH")
    if length and str(length).isdigit():
        check_size(int(length), max_bytes)
    try:
        body = request.body
    except UnreadablePostError as error:  # the sender hung up mid-body
        raise ConnectionError(str(error)) from None
    except RequestDataTooBig:  # DATA_UPLOAD_MAX_MEMORY_SIZE, if set below max_bytes
        raise PayloadTooLargeError(
            "the delivery is over settings.DATA_UPLOAD_MAX_MEMORY_SIZE"
        ) from None
    stream = request.META.get("wsgi.input")
    if not body and not length and request.META.get("wsgi.input_terminated") and stream:
        # Chunked: Django reads only up to a Content-Length, so none is read at all; the
        # server de-chunked it and ends the stream at its end, so it is read to its end.
        return read_capped(stream.read, max_bytes)
    return body
