"""One delivery, start to answer: the receivers of every framework are adapters over it.

`deliver` (async) and `deliver_blocking` (for WSGI frameworks) run `parse_inbound`'s
checks on what a framework hands over, deduplicate by `mdr_id`, call the handler once,
and return an `Answer`: the status and JSON to send, and the delivery's `outcome` as a
value, so that whatever records deliveries (logs, metrics, traces) reads it in one place
instead of inferring it from each framework's response.

The adapters (`create_app` for aiohttp, `.django`, `.flask`, `.starlette`) only read
the request (its URL, headers and body, each framework its own way) and write the
answer back. Nothing here imports a framework.

The secret: `deliver` is handed the URL that carries it and drops it once checked, and
the handler is called from `_hand_over`, a frame that never held it, so the traceback
of a failing handler (which is logged) holds neither.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import attrs

from .._config import LOGGER_NAME
from .._errors import InvalidPayloadError, PayloadTooLargeError, WebhookError
from .._models import InboundMessage
from .._telemetry import delivery_span, record_delivery
from ._body import BodyFormat
from ._parse import allowed_hosts, check_headers, parse_body
from ._secret import Secrets, empty_secret, secret_refused
from ._store import DeliveryStore, SyncDeliveryStore

__all__ = [
    "Answer",
    "BlockingHandler",
    "BlockingReceiving",
    "BodyTimeout",
    "Checks",
    "InboundHandler",
    "Outcome",
    "Receiving",
    "deliver",
    "deliver_blocking",
    "is_async_callable",
    "read_capped",
]

logger = logging.getLogger(f"{LOGGER_NAME}.webhooks")

Outcome = Literal["accepted", "duplicate", "in_progress", "refused", "handler_failed", "hung_up"]
"""What became of a delivery:

- `accepted`: the handler returned (200);
- `duplicate`: a redelivery of an `mdr_id` already handled; the handler was not called (200);
- `in_progress`: another delivery of the same `mdr_id` is being handled (409);
- `refused`: it failed a check, or its body did not arrive in time (4xx; `Answer.reason`
  says which);
- `handler_failed`: the handler raised; a redelivery reaches it again (500);
- `hung_up`: the sender went away before its body was in (nobody reads the answer).
"""


@attrs.frozen(kw_only=True)
class Answer:
    """The answer to one delivery, and what became of it."""

    #: The HTTP status to answer with.
    status: int
    #: What became of the delivery.
    outcome: Outcome
    #: The JSON object to answer with; empty for `hung_up`, which is answered bodiless.
    fields: Mapping[str, str] = attrs.field(factory=dict)
    #: Why it was refused (a `WebhookError.reason`, or `"body_timeout"`); None otherwise.
    reason: str | None = None
    #: The message's id, once its body was parsed.
    mdr_id: str | None = None

    @property
    def body(self) -> bytes:
        """`fields` as the JSON body to send (empty when there are none)."""
        return json.dumps(dict(self.fields)).encode() if self.fields else b""


class BodyTimeout(Exception):
    """Raised by an adapter's `read_body` when the body did not arrive in time (408).

    Its message says how long it was given; it is the message of the answer.
    """


@attrs.frozen
class Checks:
    """`parse_inbound`'s settings, worked out once for a receiver (see `Checks.of`)."""

    secrets: Secrets | None
    secret_param: str
    allowed: frozenset[str] | None
    max_bytes: int

    @classmethod
    def of(
        cls,
        *,
        secret: str | Sequence[str] | None,
        secret_param: str,
        expected_host: str | Iterable[str] | None,
        max_bytes: int,
    ) -> Checks | ValueError:
        """The checks, or the `ValueError` to raise for a bad setting.

        Returned, not raised: the caller raises it once it has dropped `secret` from its
        own locals (error trackers record the locals of a traceback's frames).
        """
        secrets = None if secret is None else Secrets.of(secret)
        refused = secret is not None and secrets is None
        del secret
        if refused:
            return empty_secret()
        try:
            allowed = None if expected_host is None else allowed_hosts(expected_host)
        except ValueError as error:
            return error
        return cls(secrets, secret_param, allowed, max_bytes)


InboundHandler = Callable[[InboundMessage], Awaitable[Any]]
"""An async callable that takes an `InboundMessage`; what it returns is ignored."""

BlockingHandler = Callable[[InboundMessage], Any]
"""A plain (blocking) callable that takes an `InboundMessage`; what it returns is ignored."""


@attrs.frozen
class Receiving:
    """What `deliver` needs: the checks, the async handler, and the store of `mdr_id`s."""

    checks: Checks
    handler: InboundHandler
    store: DeliveryStore


@attrs.frozen
class BlockingReceiving:
    """What `deliver_blocking` needs: the checks, a blocking handler and store."""

    checks: Checks
    handler: BlockingHandler
    store: SyncDeliveryStore


async def deliver(
    receiving: Receiving,
    url: str,
    headers: Mapping[str, str],
    read_body: Callable[[], Awaitable[bytes]],
) -> Answer:
    """Check, parse and hand over one delivery; the answer to give.

    Args:
        receiving: The receiver's settings, handler and store.
        url: The path and query the delivery was posted to, as sent.
        headers: Its headers.
        read_body: Reads its body as sent; called only once the URL and headers pass.
            It may raise a `WebhookError` (a body over the cap, say), `BodyTimeout`,
            or `ConnectionError` when the sender hung up.

    Raises:
        BaseException: Only what is not an `Exception` (cancellation), from the handler
            or `read_body`; a handler's `Exception` is answered 500.
    """
    # One span per delivery (with OpenTelemetry configured), current while the handler
    # runs so that its spans are children; the outcome is said on it before it ends.
    with delivery_span():
        declared = _before_body(receiving.checks, url, headers)
        del url  # it carries the secret
        if isinstance(declared, Answer):
            return _recorded(declared)
        try:
            body = await read_body()
        except (WebhookError, BodyTimeout, ConnectionError) as error:
            return _recorded(_unread(error))
        message = _message(receiving.checks, body, declared, headers)
        if isinstance(message, Answer):
            return _recorded(message)
        return _recorded(await _hand_over(message, receiving.handler, receiving.store))


def deliver_blocking(
    receiving: BlockingReceiving,
    url: str,
    headers: Mapping[str, str],
    read_body: Callable[[], bytes],
) -> Answer:
    """`deliver` for blocking frameworks (Flask, Django): the same steps and answers."""
    with delivery_span():
        declared = _before_body(receiving.checks, url, headers)
        del url  # it carries the secret
        if isinstance(declared, Answer):
            return _recorded(declared)
        try:
            body = read_body()
        except (WebhookError, BodyTimeout, ConnectionError) as error:
            return _recorded(_unread(error))
        message = _message(receiving.checks, body, declared, headers)
        if isinstance(message, Answer):
            return _recorded(message)
        return _recorded(_hand_over_blocking(message, receiving.handler, receiving.store))


def _unread(error: WebhookError | BodyTimeout | ConnectionError) -> Answer:
    """The answer to a body `read_body` could not read, by what it raised."""
    if isinstance(error, WebhookError):
        return _refused(error)
    if isinstance(error, BodyTimeout):
        return _timed_out(error)
    return _hung_up()


def _recorded(answer: Answer) -> Answer:
    """`answer`, its outcome counted and said on the delivery's span.

    In telemetry's terms (docs/telemetry.md): accepted, duplicate, or refused with the
    reason, which for a delivery in progress, a failed handler and a hang-up is the
    outcome itself.
    """
    if answer.outcome in ("accepted", "duplicate"):
        record_delivery(answer.outcome, http_status=answer.status, mdr_id=answer.mdr_id)
    else:
        reason = answer.reason or answer.outcome
        record_delivery("refused", reason=reason, http_status=answer.status, mdr_id=answer.mdr_id)
    return answer


def _before_body(checks: Checks, url: str, headers: Mapping[str, str]) -> BodyFormat | Answer:
    """The checks made before the body is read: the secret, the host, the content type."""
    if checks.secrets is not None and not checks.secrets.carried_by_url(url, checks.secret_param):
        return _refused(secret_refused(checks.secret_param))
    try:
        return check_headers(headers, checks.allowed)
    except WebhookError as error:
        return _refused(error)


def _message(
    checks: Checks, body: bytes, declared: BodyFormat, headers: Mapping[str, str]
) -> InboundMessage | Answer:
    """The message in `body`, or the refusal of it."""
    try:
        if not body:
            # "Not JSON: expecting value" would send the reader looking at the sender.
            raise _empty_body(headers)
        return parse_body(body, declared, checks.max_bytes)
    except WebhookError as error:
        return _refused(error)


def _empty_body(headers: Mapping[str, str]) -> InvalidPayloadError:
    chunked = any(
        name.lower() == "transfer-encoding" and "chunked" in value.lower()
        for name, value in headers.items()
    )
    if chunked:
        # WSGI gives a body without a Content-Length only when the server says it has
        # de-chunked it (`wsgi.input_terminated`); otherwise Django and Flask hand over b"".
        return InvalidPayloadError(
            "the delivery has an empty body (chunked request the server did not de-chunk): "
            "serve it with a WSGI server that de-chunks request bodies, such as gunicorn"
        )
    return InvalidPayloadError("the delivery has an empty body")


async def _hand_over(
    message: InboundMessage, handler: InboundHandler, deliveries: DeliveryStore
) -> Answer:
    """Hand `message` to `handler` once, deduplicated by `deliveries`.

    A function of its own, holding neither the request nor its URL (which may carry
    the secret): a handler's exception, logged with its traceback, passes through it.
    """
    claim = await deliveries.claim(message.mdr_id)
    if claim != "new":
        return _seen(message.mdr_id, in_progress=claim == "in_progress")
    try:
        await handler(message)
    except Exception:
        await deliveries.release(message.mdr_id)
        return _handler_failed(message.mdr_id)
    except BaseException:
        await deliveries.release(message.mdr_id)
        raise
    await deliveries.complete(message.mdr_id)
    return _accepted(message.mdr_id)


def _hand_over_blocking(
    message: InboundMessage, handler: BlockingHandler, deliveries: SyncDeliveryStore
) -> Answer:
    """`_hand_over` for a blocking handler and store."""
    claim = deliveries.claim(message.mdr_id)
    if claim != "new":
        return _seen(message.mdr_id, in_progress=claim == "in_progress")
    try:
        _check_not_awaitable(handler(message))
    except Exception:
        deliveries.release(message.mdr_id)
        return _handler_failed(message.mdr_id)
    except BaseException:
        deliveries.release(message.mdr_id)
        raise
    deliveries.complete(message.mdr_id)
    return _accepted(message.mdr_id)


def _check_not_awaitable(result: object) -> None:
    """Raise if a blocking handler returned an awaitable: it did not take the message.

    An async handler can slip past the check at creation (a lambda around one, say), and
    nothing in a blocking receiver would run what it returned.
    """
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()  # not "never awaited" on top of the error
        raise TypeError("the handler returned an awaitable: a blocking receiver needs a def")


def _accepted(mdr_id: str) -> Answer:
    fields = {"status": "accepted", "mdr_id": mdr_id}
    return Answer(status=200, outcome="accepted", fields=fields, mdr_id=mdr_id)


def _seen(mdr_id: str, *, in_progress: bool) -> Answer:
    if in_progress:
        return Answer(
            status=409,
            outcome="in_progress",
            fields={"error": "in_progress", "mdr_id": mdr_id},
            mdr_id=mdr_id,
        )
    logger.info("delivery of %s was handled before; not handled again", mdr_id)
    fields = {"status": "duplicate", "mdr_id": mdr_id}
    return Answer(status=200, outcome="duplicate", fields=fields, mdr_id=mdr_id)


def _handler_failed(mdr_id: str) -> Answer:
    # Called from the `except` of `_hand_over`: the traceback logged is the handler's.
    logger.exception("the handler failed on %s; answering 500", mdr_id)
    return Answer(
        status=500,
        outcome="handler_failed",
        fields={"error": "handler_failed", "mdr_id": mdr_id},
        mdr_id=mdr_id,
    )


def _refused(error: WebhookError) -> Answer:
    return _refusal(error.http_status or 400, error.reason, str(error))


def _timed_out(error: BodyTimeout) -> Answer:
    return _refusal(408, "body_timeout", str(error))


def _refusal(status: int, reason: str, message: str) -> Answer:
    logger.warning("refused a delivery (%d %s): %s", status, reason, message)
    return Answer(
        status=status,
        outcome="refused",
        fields={"error": reason, "message": message},
        reason=reason,
    )


def _hung_up() -> Answer:
    # No one to answer, and nothing failed here: not an error in the logs.
    logger.info("the sender of a delivery hung up before its body was in")
    return Answer(status=400, outcome="hung_up")


def read_capped(read: Callable[[int], bytes], max_bytes: int, *, chunk: int = 16 * 1024) -> bytes:
    """Everything `read` gives until it returns b"", refused as soon as it is over `max_bytes`.

    For a WSGI input stream whose length is not known (a de-chunked body).

    Raises:
        PayloadTooLargeError: Over `max_bytes`.
    """
    chunks: list[bytes] = []
    size = 0
    while data := read(chunk):
        size += len(data)
        if size > max_bytes:
            raise PayloadTooLargeError(f"the delivery is over the limit of {max_bytes} bytes")
        chunks.append(data)
    return b"".join(chunks)


def is_async_callable(handler: object) -> bool:
    """Whether calling `handler` returns a coroutine.

    True for an `async def`, an object whose `__call__` is one, and a `functools.partial`
    of either.
    """
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - the method itself is inspected
    )
