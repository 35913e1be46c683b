"""Receive deliveries in Starlette or FastAPI: `webhook_route` and `webhook_endpoint`.

```py
from voipnumber_async.webhooks.starlette import webhook_endpoint, webhook_route

app = Starlette(routes=[webhook_route("/webhooks/voipnumber", save_message, secret=SECRET)])
# FastAPI:
app.add_api_route("/webhooks/voipnumber", webhook_endpoint(save_message, secret=SECRET),
                  methods=["POST"], include_in_schema=False)
```

They do what `create_app` does: check the secret and the headers, parse the body,
deduplicate redeliveries, call the async `handler` once per message, and answer the
service. Importing this module imports Starlette; nothing else in the SDK does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from .._errors import PayloadTooLargeError
from .._wire.inbound import WEBHOOK_HOST
from ._body import DEFAULT_MAX_WEBHOOK_BYTES, check_size
from ._delivery import Checks, InboundHandler, Receiving, deliver, is_async_callable
from ._parse import DEFAULT_SECRET_PARAM
from ._store import DeliveryStore, MemoryDeliveryStore

__all__ = ["webhook_endpoint", "webhook_route"]


def webhook_endpoint(
    handler: InboundHandler,
    *,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
    store: DeliveryStore | None = None,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette (or FastAPI) endpoint that receives the service's deliveries.

    Route POST to it: `Route(path, endpoint, methods=["POST"])` (what `webhook_route`
    makes), or FastAPI's `app.add_api_route(path, endpoint, methods=["POST"])`. The
    answers are `create_app`'s: 200 once `handler` returned (and for a redelivery of a
    message already handled, without calling it again), 400/403/413/415 for a delivery
    that fails a check, 409 while another delivery of the same message is being
    handled, 500 when `handler` raised (the next delivery reaches it again).

    The body is read as it comes, cut off at `max_bytes`; how long the sender may take
    over it is your ASGI server's setting (uvicorn's `--timeout-keep-alive` and the like).

    Args:
        handler: An `async def` (or an object with one as `__call__`), awaited with
            each new `InboundMessage`; store or queue it, and raise if you cannot.
        secret: The shared secret the webhook URL must carry (recommended), as a query
            parameter or a path segment (a path parameter such as `{secret}` is fine:
            it is compared in constant time here). Or several, to rotate it.
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted, as sent and once inflated.
        store: Remembers handled `mdr_id`s; default a `MemoryDeliveryStore` (this
            process only). With several worker processes, pass one over your database.

    Raises:
        TypeError: `handler` is a plain function: it would block the event loop (wrap
            it with `starlette.concurrency.run_in_threadpool` in an `async def`).
        ValueError: `secret` is empty or holds an empty one, or `expected_host` names
            no host.
    """
    checks = Checks.of(
        secret=secret, secret_param=secret_param, expected_host=expected_host, max_bytes=max_bytes
    )
    del secret  # out of this frame's locals before anything is raised
    if isinstance(checks, ValueError):
        raise checks
    if not is_async_callable(handler):
        raise TypeError(
            f"webhook_endpoint needs an async def as its handler, not {handler!r}: a plain "
            "function would block the event loop (call it through "
            "starlette.concurrency.run_in_threadpool from an async def)"
        )
    receiving = Receiving(checks, handler, store if store is not None else MemoryDeliveryStore())

    async def voipnumber_webhook(request: Request) -> Response:
        async def read_body() -> bytes:
            return await _read_body(request, max_bytes)

        answer = await deliver(receiving, _raw_url(request.scope), request.headers, read_body)
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    return voipnumber_webhook


def webhook_route(
    path: str,
    handler: InboundHandler,
    *,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
    store: DeliveryStore | None = None,
) -> Route:
    """A POST `Route` at `path` to a `webhook_endpoint`; the arguments are its own.

    For `Starlette(routes=[...])`, a `Router`, or FastAPI's `app.router.routes`.
    `path` may hold the secret as a path parameter (`/webhooks/voipnumber/{secret}`).

    Raises:
        TypeError: `handler` is a plain function.
        ValueError: `secret` is empty or holds an empty one, or `expected_host` names
            no host.
    """
    endpoint = webhook_endpoint(
        handler,
        secret=secret,
        secret_param=secret_param,
        expected_host=expected_host,
        max_bytes=max_bytes,
        store=store,
    )
    return Route(path, endpoint, methods=["POST"], include_in_schema=False)


def _raw_url(scope: Scope) -> str:
    """The path and query as sent (what `parse_inbound` is given as `url=`)."""
    raw_path = scope.get("raw_path")
    # ASGI's raw_path has no query, but older Starlette TestClients put it there:
    # a "?" in a path as sent can only start the query, so it is cut off.
    path = raw_path.partition(b"?")[0].decode("latin-1") if raw_path else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body as sent, cut off as soon as it is over `max_bytes`."""
    length = request.headers.get("content-length", "")
    if length.isdigit():
        check_size(int(length), max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLargeError(f"the delivery is over the limit of {max_bytes} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # the sender hung up mid-body
        raise ConnectionError("the sender hung up") from None
    return b"".join(chunks)
