"""`create_app`: an aiohttp application that receives deliveries and hands them over."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

from aiohttp import web

from .._config import LOGGER_NAME
from .._errors import PayloadTooLargeError, WebhookError
from .._models import InboundMessage
from .._telemetry import delivery_span, record_delivery
from .._wire.inbound import WEBHOOK_HOST
from ._body import DEFAULT_MAX_WEBHOOK_BYTES, check_size
from ._parse import DEFAULT_SECRET_PARAM, allowed_hosts, check_headers, parse_body
from ._secret import Secrets, empty_secret, secret_refused
from ._store import DeliveryStore, MemoryDeliveryStore

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_WEBHOOK_PATH", "InboundHandler", "create_app"]

logger = logging.getLogger(f"{LOGGER_NAME}.webhooks")

DEFAULT_WEBHOOK_PATH: Final = "/webhooks/voipnumber"
#: Seconds a delivery's body has to arrive once its headers have: a documented one is
#: about 250 bytes, so only a stalled or hostile peer takes longer.
DEFAULT_BODY_TIMEOUT: Final = 10.0

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
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
) -> web.Application:
    """An aiohttp application that receives the service's deliveries at `path`.

    ```py
    async def on_message(message: InboundMessage) -> None:
        print(message.from_, message.body)

    web.run_app(create_app(on_message, secret=os.environ["WEBHOOK_SECRET"]))
    ```

    Each delivery is checked as `parse_inbound` checks it (same arguments, same
    order): the secret in the URL and the headers before the body is read, then the
    body, read for at most `body_timeout` seconds. Then it is handed to `handler`. The
    answer tells the service what happened, as it records it:

    - **200** once `handler` returned, and for a redelivery of an `mdr_id` already
      handled (the handler is not called again);
    - **400, 403, 413, 415** for a delivery that fails a check, with a short JSON
      error (`{"error": "invalid_secret", "message": "..."}`);
    - **408** when the body did not arrive within `body_timeout`; the connection is
      then closed;
    - **409** while another delivery of the same `mdr_id` is being handled;
    - **500** when `handler` raised: the claim is released, so the service's next
      delivery of that message reaches the handler again.

    Serve the application itself (`web.run_app`, `web.AppRunner`), not as a
    sub-application: it turns off aiohttp's own inflating of compressed bodies
    (`handler_args`), so that the SDK inflates them under `max_bytes` as it reads.

    Args:
        handler: Called with each new message.
        path: Where deliveries are posted. It may hold the secret as a route
            variable, e.g. `/webhooks/voipnumber/{secret}`; the value is compared in
            constant time, never matched by the router.
        secret: The shared secret the webhook URL must carry (recommended); or
            several, any of which is accepted, to rotate it.
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted, as sent and once inflated.
        store: Remembers handled `mdr_id`s; default a `MemoryDeliveryStore` (this
            process only, bounded, a day long). Pass one over your database to
            deduplicate across processes and restarts.
        body_timeout: Seconds the body has to arrive once the headers have.

    Raises:
        ValueError: `secret` is empty or holds an empty one, `expected_host` names no
            host, or `body_timeout` is not a positive number of seconds.
    """
    # What parse_inbound works out on each call, worked out once (and a bad setting
    # refused here, not at the first delivery). The secret leaves this frame's locals
    # before anything is raised: error trackers record the locals of a traceback's frames.
    secrets = None if secret is None else Secrets.of(secret)
    secret_refused_here = secret is not None and secrets is None
    del secret
    if secret_refused_here:
        raise empty_secret()
    if not (isinstance(body_timeout, (int, float)) and 0 < body_timeout < math.inf):
        raise ValueError(f"body_timeout must be a positive number of seconds, got {body_timeout!r}")
    allowed = None if expected_host is None else allowed_hosts(expected_host)
    deliveries = store if store is not None else MemoryDeliveryStore()

    async def check_and_hand_over(request: web.Request) -> web.StreamResponse:
        try:
            # The path and query as sent: what parse_inbound is given as `url=`.
            if secrets is not None and not secrets.carried_by_url(request.raw_path, secret_param):
                raise secret_refused(secret_param)
            declared = check_headers(request.headers, allowed)
            body = await _read_body(request, max_bytes, body_timeout)
            message = parse_body(body, declared, max_bytes)
        except WebhookError as error:
            return await _refuse(
                request, error.http_status or 400, error=error.reason, message=str(error)
            )
        except asyncio.TimeoutError:
            return await _refuse(
                request,
                408,
                error="body_timeout",
                message=f"the delivery's body did not arrive within {body_timeout} s",
            )
        except ConnectionError:
            # The sender hung up mid-body: no one to answer, and nothing failed here (left
            # to aiohttp, it would be logged as an error and answered 500).
            logger.info("the sender of a delivery hung up before its body was in")
            record_delivery("refused", reason="hung_up", http_status=400)
            return web.Response(status=400)
        return await _hand_over(message, handler, deliveries)

    async def receive(request: web.Request) -> web.StreamResponse:
        # One span per delivery (with OpenTelemetry configured), current while the
        # handler runs so that its spans are children.
        with delivery_span():
            return await check_and_hand_over(request)

    # Bodies as sent, so that `parse_body` inflates them, under the cap, as it does for
    # parse_inbound: aiohttp's own inflating would be a second implementation, and one
    # that refuses what it cannot inflate with a 400 of its own.
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_post(path, receive)
    return app


async def _hand_over(
    message: InboundMessage, handler: InboundHandler, deliveries: DeliveryStore
) -> web.Response:
    """Hand `message` to `handler` once, deduplicated by `deliveries`; the answer to give.

    A function of its own, holding neither the request nor its URL (which may carry
    the secret): a handler's exception, logged with its traceback, passes through it.
    """
    claim = await deliveries.claim(message.mdr_id)
    if claim == "done":
        logger.info("delivery of %s was handled before; not handled again", message.mdr_id)
        record_delivery("duplicate", mdr_id=message.mdr_id)
        return _answer(200, status="duplicate", mdr_id=message.mdr_id)
    if claim == "in_progress":
        record_delivery("refused", reason="in_progress", http_status=409, mdr_id=message.mdr_id)
        return _answer(409, error="in_progress", mdr_id=message.mdr_id)
    try:
        await handler(message)
    except Exception:
        await deliveries.release(message.mdr_id)
        logger.exception("the handler failed on %s; answering 500", message.mdr_id)
        record_delivery("refused", reason="handler_failed", http_status=500, mdr_id=message.mdr_id)
        return _answer(500, error="handler_failed", mdr_id=message.mdr_id)
    except BaseException:
        await deliveries.release(message.mdr_id)
        raise
    await deliveries.complete(message.mdr_id)
    record_delivery("accepted", mdr_id=message.mdr_id)
    return _answer(200, status="accepted", mdr_id=message.mdr_id)


async def _read_body(request: web.Request, max_bytes: int, timeout: float) -> bytes:
    """The body as sent, cut off as soon as it is over `max_bytes`.

    Raises:
        PayloadTooLargeError: Over `max_bytes`, by its Content-Length or as it came.
        asyncio.TimeoutError: It did not all arrive within `timeout` seconds.
    """
    length = request.content_length
    if length is not None:
        check_size(length, max_bytes)
    if request.content.is_eof():
        # All of it came with the headers, as a small delivery does: nothing to wait
        # for, so no timer to set.
        return await _read_capped(request, length, max_bytes)
    return await asyncio.wait_for(_read_capped(request, length, max_bytes), timeout)


async def _read_capped(request: web.Request, length: int | None, max_bytes: int) -> bytes:
    if length is not None and length <= request.client_max_size:
        # A body of known length within both limits: read whole, the cheapest way. (The
        # parser holds the body to its Content-Length, so no more can come.)
        return await request.read()
    # No length (a chunked body), or one over the app's `client_max_size`: read in
    # chunks, cut off as soon as it is over the cap.
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(f"the delivery is over the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _refuse(request: web.Request, http_status: int, /, **fields: Any) -> web.StreamResponse:
    """The answer to a refused delivery; then the connection is closed, if its body is not in.

    aiohttp would otherwise read on for the rest of a body that will not be used, for up
    to its lingering time (10 s): holding the connection of a stalled peer for nothing,
    or reading megabytes announced by a Content-Length over the cap.
    """
    logger.warning(
        "refused a delivery (%d %s): %s", http_status, fields["error"], fields["message"]
    )
    record_delivery("refused", reason=fields["error"], http_status=http_status)
    response = _answer(http_status, **fields)
    if request.content.is_eof():
        return response
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response


def _answer(http_status: int, /, **fields: Any) -> web.Response:
    return web.json_response(fields, status=http_status)
