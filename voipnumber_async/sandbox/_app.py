"""The sandbox's HTTP app: the wire contract's routes, turning requests into answers.

`make_app(state)` serves `POST /v1/sms/send` (authenticate, replay a known key, check
the message, accept it; faults before or after) and `POST /sandbox/inbound` (deliver an
inbound message). Every answer's bytes come from the `_wire` encoders the client
decodes, so a correction to the contract reaches both. The send handler is the
benchmarks' hot path: it does no more than the contract asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Final

from aiohttp import hdrs, web

from .._config import LOGGER_NAME
from .._models import MessageStatus, SentMessage
from .._validation import E164
from .._wire.answers import (
    HEADER_REQUEST_ID,
    HEADER_RETRY_AFTER,
    encode_error,
    encode_send_success,
    load_json,
)
from .._wire.codes import ERROR_DESCRIPTIONS, ERROR_HTTP_STATUS
from .._wire.requests import (
    HEADER_ACCOUNT_ID,
    HEADER_AUTHORIZATION,
    HEADER_IDEMPOTENCY_KEY,
    JSON_CONTENT_TYPE,
    SEND_SMS_PATH,
    bearer_token,
)
from ._accounts import token_matches
from ._delivery import deliver, order_delivery
from ._faults import Fault
from ._idempotency import key_slot
from ._inbound import OrderError, read_order
from ._limits import RATE_LIMITED_BODY
from ._records import AcceptedMessage, RecordedRequest
from ._state import SandboxState

__all__ = ["INBOUND_TRIGGER_PATH", "make_app"]

logger = logging.getLogger(f"{LOGGER_NAME}.sandbox")

#: Where the sandbox takes orders to deliver an inbound message (an extension of the
#: sandbox, not of the service): `POST {"to": ..., "from": ..., "body": ..., "type": ...}`,
#: or `{"mdr_id": ...}` to redeliver one (`_inbound.read_order` checks them).
INBOUND_TRIGGER_PATH = "/sandbox/inbound"

#: Every error the sandbox answers of its own, by code: `(HTTP status, body)`.
_REFUSALS: Final[Mapping[str, tuple[int, bytes]]] = {
    **{
        code: (ERROR_HTTP_STATUS[code], encode_error(code, description))
        for code, description in ERROR_DESCRIPTIONS.items()
    },
    "IDEMPOTENCY_KEY_REUSED": (
        422,
        encode_error(
            "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key was already used for a different request"
        ),
    ),
}

#: `(status, body, replayed)`: the normal answer to a send, before any fault after it.
_Answer = tuple[int, bytes, bool]


def make_app(state: SandboxState) -> web.Application:
    """The aiohttp application serving `state`'s routes."""
    handlers = _Handlers(state)
    app = web.Application()
    app.router.add_post(SEND_SMS_PATH, handlers.send)
    app.router.add_post(INBOUND_TRIGGER_PATH, handlers.inbound_trigger)
    return app


class _Handlers:
    """The routes' handlers, over one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self._state = state

    async def send(self, request: web.Request) -> web.StreamResponse:
        """Answer a send as the service would, unless an injected fault says otherwise."""
        state = self._state
        state.request_count += 1
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        record: RecordedRequest | None = None
        try:
            body = await request.read()
            fault = state._faults.take()
            if fault is not None:
                state.fault_counts[fault] += 1
            record = RecordedRequest(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                received_at=time.time(),
                idempotency_key=request.headers.get(HEADER_IDEMPOTENCY_KEY),
                fault=fault,
            )
            if state.record:
                state.requests.append(record)
            if fault is not None and not fault.after_processing:
                answer = await _apply(fault, request, record)
                if answer is not None:
                    return answer
            try:
                status, answer_body, record.replayed = _process(state, request, body)
            except _Throttled as throttled:
                record.status = 429
                state.error_counts["RATE_LIMITED"] += 1
                return web.Response(
                    status=429,
                    body=RATE_LIMITED_BODY,
                    content_type=JSON_CONTENT_TYPE,
                    headers={
                        HEADER_REQUEST_ID: _request_id(),
                        HEADER_RETRY_AFTER: str(throttled.retry_after),
                    },
                )
            if fault is not None and fault.after_processing:
                faulty = await _apply(fault, request, record)
                if faulty is not None:
                    return faulty
            record.status = status
            return web.Response(
                status=status,
                body=answer_body,
                content_type=JSON_CONTENT_TYPE,
                headers={HEADER_REQUEST_ID: _request_id()},
            )
        finally:
            state.in_flight -= 1
            state.status_counts[None if record is None else record.status] += 1
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "POST %s -> %s%s",
                    request.path,
                    "dropped" if record is None or record.status is None else record.status,
                    " (replayed)" if record is not None and record.replayed else "",
                )

    async def inbound_trigger(self, request: web.Request) -> web.Response:
        """Deliver the message an order describes, or redeliver the one its `mdr_id` names."""
        try:
            order = read_order(request.headers.get(hdrs.CONTENT_TYPE, ""), await request.read())
            message, url = order_delivery(self._state, order)
        except OrderError as refusal:
            return web.json_response({"error": refusal.message}, status=refusal.status)
        delivery = await deliver(self._state, message, url, timeout=10.0)
        return web.json_response(
            {"mdr_id": delivery.message.mdr_id, "status": delivery.status,
             "attempt": delivery.attempt, "error": delivery.error}
        )  # fmt: skip


class _Throttled(Exception):
    """The account is over its rate limit: answer 429 with this `Retry-After`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:16]}"


async def _apply(
    fault: Fault, request: web.Request, record: RecordedRequest
) -> web.StreamResponse | None:
    """Carry out `fault`; return the answer that replaces the normal one, if any."""
    if fault.delay_s:
        await asyncio.sleep(fault.delay_s)
    if fault.drop_connection:
        if request.transport is not None:
            request.transport.abort()
        # The transport is gone: this answer never leaves, and aiohttp logs nothing.
        raise web.HTTPInternalServerError
    if fault.status is None:
        return None
    record.status = fault.status
    headers = dict(fault.headers)
    return web.Response(
        status=fault.status, body=fault.body, headers={HEADER_REQUEST_ID: _request_id(), **headers}
    )


def _process(state: SandboxState, request: web.Request, body: bytes) -> _Answer:
    """The normal answer to a send; accepts the message if it is valid.

    Raises:
        _Throttled: The account is over its rate limit (checked once it is known).
    """
    account_id = request.headers.get(HEADER_ACCOUNT_ID, "").strip()
    if not account_id:
        return _refuse(state, "USER_ACCOUNT_MISSING")
    token = bearer_token(request.headers.get(HEADER_AUTHORIZATION))
    if not token:
        return _refuse(state, "API_TOKEN_MISSING")
    account = state.accounts.get(account_id)
    if account is None:
        return _refuse(state, "USER_NOT_FOUND")
    if not token_matches(account, token):
        return _refuse(state, "API_TOKEN_INVALID")
    limiter = state._limiter(account)
    if limiter is not None and (retry_after := limiter.take()):
        raise _Throttled(retry_after)

    fields = _message_fields(body)
    key = request.headers.get(HEADER_IDEMPOTENCY_KEY)
    slot = None if key is None else key_slot(account_id, key)
    if slot is not None:
        first = state._answers.recall(slot)
        if first is not None:
            if fields is None or not first.is_for(body):
                return _refuse(state, "IDEMPOTENCY_KEY_REUSED")
            state.replayed_count += 1
            return 200, _success(state, first.message_id, fields[2], first.timestamp_s), True

    if fields is None:
        return _refuse(state, "MESSAGE_INVALID")
    from_, to, text = fields
    owner = state._number_owners.get(from_)
    if owner is None:
        return _refuse(state, "NUMBER_NOT_FOUND")
    if owner != account_id:
        return _refuse(state, "NUMBER_OWNERSHIP")

    new_id, now = uuid.uuid4(), int(time.time())
    state.accepted_count += 1
    state.messages.append(
        AcceptedMessage(
            id=str(new_id),
            account_id=account_id,
            from_=from_,
            to=to,
            body=text,
            idempotency_key=key,
            timestamp_s=now,
        )
    )
    if slot is not None:
        state._answers.remember(slot, body, new_id, now)
    return 200, _success(state, str(new_id), text, now), False


def _success(state: SandboxState, message_id: str, text: str, timestamp_s: int) -> bytes:
    """The success answer for a message: the same bytes every time it is asked for."""
    message = SentMessage(
        id=message_id,
        status=MessageStatus.QUEUED,
        body=text,
        timestamp_s=timestamp_s,
        created=datetime.fromtimestamp(timestamp_s, timezone.utc),
    )
    return encode_send_success(message, nested=state.envelope == "nested")


def _refuse(state: SandboxState, code: str) -> _Answer:
    """The error answer for `code`, counted."""
    state.error_counts[code] += 1
    status, answer = _REFUSALS[code]
    return status, answer, False


def _message_fields(body: bytes) -> tuple[str, str, str] | None:
    """`(from, to, body)` of a send's JSON body, or None if it is not a valid message."""
    try:
        payload = load_json(body)
    except ValueError:  # not JSON, not UTF-8, or nested too deeply
        return None
    if not isinstance(payload, dict):
        return None
    from_, to, text = payload.get("from"), payload.get("to"), payload.get("body")
    if not (isinstance(from_, str) and isinstance(to, str) and isinstance(text, str) and text):
        return None
    if E164.fullmatch(from_) is None or E164.fullmatch(to) is None:
        return None
    return from_, to, text
