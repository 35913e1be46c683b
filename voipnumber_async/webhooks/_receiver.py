"""`create_app`: an aiohttp application that receives deliveries and hands them over.

An adapter over `_delivery.deliver`, which makes every decision; what is aiohttp's own
is here: reading the body under a deadline, and closing a connection whose body will
not be read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from typing import Final

from aiohttp import web

from .._errors import PayloadTooLargeError
from .._wire.inbound import WEBHOOK_HOST
from ._body import DEFAULT_MAX_WEBHOOK_BYTES, check_size
from ._delivery import BodyTimeout, Checks, InboundHandler, Receiving, deliver
from ._parse import DEFAULT_SECRET_PARAM
from ._store import DeliveryStore, MemoryDeliveryStore

__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_WEBHOOK_PATH", "InboundHandler", "create_app"]

DEFAULT_WEBHOOK_PATH: Final = "/webhooks/voipnumber"
#: Seconds a delivery's body has to arrive once its headers have: a documented one is
#: about 250 bytes, so only a stalled or hostile peer takes longer.
DEFAULT_BODY_TIMEOUT: Final = 10.0

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
    checks = Checks.of(
        secret=secret, secret_param=secret_param, expected_host=expected_host, max_bytes=max_bytes
    )
    del secret
    if isinstance(checks, ValueError):
        raise checks
    if not (isinstance(body_timeout, (int, float)) and 0 < body_timeout < math.inf):
        raise ValueError(f"body_timeout must be a positive number of seconds, got {body_timeout!r}")
    receiving = Receiving(checks, handler, store if store is not None else MemoryDeliveryStore())
    too_slow = f"the delivery's body did not arrive within {body_timeout} s"

    async def receive(request: web.Request) -> web.StreamResponse:
        async def read_body() -> bytes:
            try:
                return await _read_body(request, max_bytes, body_timeout)
            except asyncio.TimeoutError:
                raise BodyTimeout(too_slow) from None

        # The path and query as sent: what parse_inbound is given as `url=`.
        answer = await deliver(receiving, request.raw_path, request.headers, read_body)
        if answer.outcome == "hung_up":
            # No one to read it; left to aiohttp, a hang-up would be logged as an error
            # and answered 500.
            return web.Response(status=answer.status)
        response = web.json_response(answer.fields, status=answer.status)
        if answer.outcome == "refused":
            return await _close_unread(request, response)
        return response

    # Bodies as sent, so that `parse_body` inflates them, under the cap, as it does for
    # parse_inbound: aiohttp's own inflating would be a second implementation, and one
    # that refuses what it cannot inflate with a 400 of its own.
    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_post(path, receive)
    return app


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


async def _close_unread(request: web.Request, response: web.Response) -> web.StreamResponse:
    """Send the answer to a refused delivery; then close the connection, if its body is not in.

    aiohttp would otherwise read on for the rest of a body that will not be used, for up
    to its lingering time (10 s): holding the connection of a stalled peer for nothing,
    or reading megabytes announced by a Content-Length over the cap.
    """
    if request.content.is_eof():
        return response
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
