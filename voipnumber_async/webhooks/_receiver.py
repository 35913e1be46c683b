"""`create_app`: an aiohttp application that receives deliveries and hands them over."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

from aiohttp import hdrs, web

from .._config import LOGGER_NAME
from .._errors import PayloadTooLargeError, WebhookError
from .._models import InboundMessage
from .._wire import WEBHOOK_HOST
from ._parse import (
    DEFAULT_MAX_WEBHOOK_BYTES,
    DEFAULT_SECRET_PARAM,
    allowed_hosts,
    carries_secret,
    check_secret,
    check_size,
    parse_delivery,
    secret_refused,
    secrets_of,
)
from ._store import DeliveryStore, MemoryDeliveryStore

__all__ = ["DEFAULT_WEBHOOK_PATH", "InboundHandler", "create_app"]

logger = logging.getLogger(f"{LOGGER_NAME}.webhooks")

DEFAULT_WEBHOOK_PATH: Final = "/webhooks/voipnumber"

InboundHandler = Callable[[InboundMessage], Awaitable[Any]]
"""An async callable that takes an `InboundMessage`; what it returns is ignored."""

_READ_CHUNK: Final = 16 * 1024


def create_app(
    handler: InboundHandler,
    *,
    path: str = DEFAULT_WEBHOOK_PATH,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
    store: DeliveryStore | None = None,
) -> web.Application:
    """An aiohttp application that receives the service's deliveries at `path`.

    ```py
    async def on_message(message: InboundMessage) -> None:
        print(message.from_, message.body)

    web.run_app(create_app(on_message, secret=os.environ["WEBHOOK_SECRET"]))
    ```

    Each delivery is checked by `parse_inbound` (same arguments), then handed to
    `handler`. The answer tells the service what happened, as it records it:

    - **200** once `handler` returned, and for a redelivery of an `mdr_id` already
      handled (the handler is not called again);
    - **400, 403, 413, 415** for a delivery that fails a check, with a short JSON
      error (`{"error": "invalid_secret", "message": "..."}`);
    - **409** while another delivery of the same `mdr_id` is being handled;
    - **500** when `handler` raised: the claim is released, so the service's next
      delivery of that message reaches the handler again.

    Args:
        handler: Called with each new message.
        path: Where deliveries are posted. It may hold the secret as a route
            variable, e.g. `/webhooks/voipnumber/{secret}`; the value is compared in
            constant time, never matched by the router.
        secret: The shared secret the webhook URL must carry (recommended); or
            several, any of which is accepted, to rotate it.
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted.
        store: Remembers handled `mdr_id`s; default a `MemoryDeliveryStore` (this
            process only, bounded, a day long). Pass one over your database to
            deduplicate across processes and restarts.
    """
    deliveries = store if store is not None else MemoryDeliveryStore()
    # What parse_inbound works out on each call, worked out once (and an empty secret
    # refused here, not at the first delivery).
    expected_secret = None if secret is None else secrets_of(secret)
    allowed = None if expected_host is None else allowed_hosts(expected_host)

    async def receive(request: web.Request) -> web.Response:
        try:
            body = await _read_body(request, max_bytes)
            check_size(body, max_bytes)
            if expected_secret is not None:
                _check_secret(request, expected_secret, secret_param)
            message = parse_delivery(body, request.headers, allowed)
        except WebhookError as error:
            logger.warning("refused a delivery (%d %s): %s", error.http_status, error.reason, error)
            return _answer(error.http_status or 400, error=error.reason, message=str(error))

        claim = await deliveries.claim(message.mdr_id)
        if claim == "done":
            logger.info("delivery of %s was handled before; not handled again", message.mdr_id)
            return _answer(200, status="duplicate", mdr_id=message.mdr_id)
        if claim == "in_progress":
            return _answer(409, error="in_progress", mdr_id=message.mdr_id)
        try:
            await handler(message)
        except Exception:
            await deliveries.release(message.mdr_id)
            logger.exception("the handler failed on %s; answering 500", message.mdr_id)
            return _answer(500, error="handler_failed", mdr_id=message.mdr_id)
        except BaseException:
            await deliveries.release(message.mdr_id)
            raise
        await deliveries.complete(message.mdr_id)
        return _accepted(message.mdr_id)

    app = web.Application()
    app.router.add_post(path, receive)
    return app


def _check_secret(request: web.Request, expected: tuple[bytes, ...], secret_param: str) -> None:
    """`parse_inbound`'s secret check on `request.rel_url`, without parsing it again.

    The candidates are the same: every segment of the (encoded) path, and every value
    of the query parameter `secret_param` (yarl decodes the query as `parse_qsl` does).
    """
    url = request.rel_url
    path = url.raw_path
    if path.startswith("//"):
        # A path urlsplit would read a host in: the long way, to the same verdict.
        check_secret(str(url), [s.decode() for s in expected], secret_param)
        return
    candidates = [segment for segment in path.split("/") if segment]
    candidates += url.query.getall(secret_param, ())
    if not carries_secret(candidates, expected):
        raise secret_refused(secret_param)


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None:
        if length > max_bytes:
            raise PayloadTooLargeError(
                f"the delivery is {length} bytes, over the limit of {max_bytes}"
            )
        # A body of known length within both limits, as sent: read whole, the cheapest
        # way. (The parser holds the body to its Content-Length, so no more can come.)
        # A compressed one is not: `read` would inflate all of it before any check.
        if length <= request.client_max_size and hdrs.CONTENT_ENCODING not in request.headers:
            return await request.read()
    # No length (a chunked body), a compressed one, or one over the app's
    # `client_max_size`: read in chunks, cut off as soon as it is over the cap.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"the delivery is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(http_status: int, /, **fields: Any) -> web.Response:
    return web.json_response(fields, status=http_status)


def _accepted(mdr_id: str) -> web.Response:
    """`_answer(200, status="accepted", mdr_id=mdr_id)`, byte for byte, made cheaper."""
    body = b'{"status": "accepted", "mdr_id": %s}' % json.dumps(mdr_id).encode()
    return web.Response(body=body, content_type="application/json", charset="utf-8")
