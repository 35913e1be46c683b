"""Receive deliveries in Flask: `webhook_view(handler, ...)`, a view function.

```py
from voipnumber_async.webhooks.flask import webhook_view

app.add_url_rule(
    "/webhooks/voipnumber",
    view_func=webhook_view(save_message, secret=app.config["WEBHOOK_SECRET"]),
)
```

It does what `create_app` does: checks the secret and the headers, parses the body,
deduplicates redeliveries, calls `handler` once per message, and answers the service.
Importing this module imports Flask; nothing else in the SDK does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from flask import Response, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

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


def webhook_view(
    handler: BlockingHandler,
    *,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
    store: SyncDeliveryStore | None = None,
) -> Callable[..., Response]:
    """A Flask view function that receives the service's deliveries.

    Register it with `app.add_url_rule(rule, view_func=...)` (or on a blueprint): it
    answers POST only (its `methods`), and is named `voipnumber_webhook`; pass
    `endpoint=` to register more than one. The answers are `create_app`'s: 200 once
    `handler` returned (and for a redelivery of a message already handled, without
    calling it again), 400/403/413/415 for a delivery that fails a check, 409 while
    another delivery of the same message is being handled, 500 when `handler` raised
    (the next delivery reaches it again).

    A body sent chunked is read when the server de-chunks it (Werkzeug's development
    server and gunicorn do); otherwise Werkzeug hands it over empty, and it is answered
    "empty body (chunked request the server did not de-chunk)".

    Args:
        handler: A plain function (not `async def`), called with each new
            `InboundMessage` in the thread serving the request; store or queue it,
            and raise if you cannot.
        secret: The shared secret the webhook URL must carry (recommended), as a query
            parameter or a path segment (a route variable such as `<secret>` is fine:
            it is compared in constant time here). Or several, to rotate it.
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted, as sent and once inflated.
        store: Remembers handled `mdr_id`s; default a `SyncMemoryDeliveryStore` (this
            process only). With several worker processes, pass one over your database.

    Raises:
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
            "a Flask view calls it in a thread with no event loop (for an async handler, "
            "use voipnumber_async.webhooks.starlette or create_app)"
        )
    receiving = BlockingReceiving(
        checks, handler, store if store is not None else SyncMemoryDeliveryStore()
    )

    def voipnumber_webhook(**route_variables: Any) -> Response:
        # A secret in the path comes as a route variable: it is checked from the URL.
        del route_variables
        # Werkzeug's headers are not a Mapping by type, but have the `items()` read.
        headers = cast("Mapping[str, str]", request.headers)
        answer = deliver_blocking(
            receiving, request.full_path, headers, lambda: _read_body(max_bytes)
        )
        return Response(answer.body, status=answer.status, mimetype="application/json")

    # Flask's add_url_rule reads the methods off the view when none are passed.
    voipnumber_webhook.methods = ["POST"]  # type: ignore[attr-defined]
    return voipnumber_webhook


def _read_body(max_bytes: int) -> bytes:
    """The request's body as sent, cut off as soon as it is over `max_bytes`."""
    length = request.content_length
    if length is not None:
        check_size(length, max_bytes)
    try:
        return read_capped(request.stream.read, max_bytes)
    except ClientDisconnected as error:  # the sender hung up mid-body
        raise ConnectionError(str(error)) from None
    except RequestEntityTooLarge:  # the app's MAX_CONTENT_LENGTH, if below max_bytes
        raise PayloadTooLargeError("the delivery is over the app's MAX_CONTENT_LENGTH") from None
