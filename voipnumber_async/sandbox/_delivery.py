"""The sandbox's webhook client: inbound messages POSTed to webhooks, as the service does.

`deliver` makes one delivery (a first one, or a redelivery of an `mdr_id`) and records
it; `order_delivery` turns an order of `POST /sandbox/inbound` (`_inbound`) into the
message to deliver and where.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import aiohttp

from .._config import LOGGER_NAME
from .._models import InboundMessage, MessageType
from .._wire.inbound import WEBHOOK_HEADERS, encode_inbound
from ._inbound import (
    DEFAULT_INBOUND_BODY,
    DEFAULT_INBOUND_FROM,
    InboundOrder,
    OrderError,
    check_redelivery,
)
from ._records import Delivery, LastDelivery
from ._state import SandboxState

__all__ = ["deliver", "inbound_message", "order_delivery"]

logger = logging.getLogger(f"{LOGGER_NAME}.sandbox")


def inbound_message(
    to: str,
    body: str,
    *,
    from_: str,
    type: str,
    mdr_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> InboundMessage:
    """A message just received by the service, as its webhook delivery describes it."""
    now = int(time.time())
    return InboundMessage(
        status="received",
        from_=from_,
        to=to,
        type=type,
        body=body,
        mdr_timestamp_s=now,
        mdr_created=datetime.fromtimestamp(now, timezone.utc),
        mdr_id=mdr_id or str(uuid.uuid4()),
        extra=dict(extra or {}),
    )


async def deliver(
    state: SandboxState, message: InboundMessage, url: str, timeout: float
) -> Delivery:
    """POST `message` to `url`; the delivery, also kept in `state.deliveries`.

    An `mdr_id` delivered before counts as its next attempt. A receiver that cannot be
    reached (or answers too late) is a delivery with `status` None and the `error`.
    """
    known = state._inbound.get(message.mdr_id)
    attempt = 1 if known is None else known.attempts + 1
    # Counted before the POST, so that a concurrent redelivery is the next attempt.
    state._inbound.put(message.mdr_id, LastDelivery(message, url, attempt))
    state.delivery_count += 1
    status: int | None = None
    answer, error = b"", None
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, data=encode_inbound(message), headers=WEBHOOK_HEADERS) as reply,
        ):
            status, answer = reply.status, await reply.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
        error = f"{type(failure).__name__}: {failure}"
    delivery = Delivery(
        message=message, url=url, attempt=attempt, status=status, answer=answer, error=error
    )
    state.deliveries.append(delivery)
    logger.info("delivered %s to %s -> %s", message.mdr_id, message.to, status or error)
    return delivery


def order_delivery(state: SandboxState, order: InboundOrder) -> tuple[InboundMessage, str]:
    """The message an order describes (or the one its `mdr_id` names) and its webhook.

    Raises:
        OrderError: 400 for a number without a webhook, 404 for an `mdr_id` not (or no
            longer) known, 409 for a redelivery that describes another message.
    """
    if order.mdr_id is None:
        return _new_message(state, order)
    return _known_message(state, order.mdr_id, order)


def _new_message(state: SandboxState, order: InboundOrder) -> tuple[InboundMessage, str]:
    assert order.to is not None  # read_order refuses a new message without one
    url = state.webhooks.get(order.to)
    if url is None:
        have = ", ".join(state.webhooks) or "none"
        raise OrderError(
            400,
            f"'to' {order.to} has no webhook (numbers with one: {have}): give it one "
            f"with voipnumber sandbox --webhook {order.to}=URL, or "
            f"Sandbox(webhooks={{{order.to!r}: url}})",
        )
    message = inbound_message(
        order.to,
        DEFAULT_INBOUND_BODY if order.body is None else order.body,
        from_=order.from_ or DEFAULT_INBOUND_FROM,
        type=order.type or MessageType.SMS,
    )
    return message, url


def _known_message(
    state: SandboxState, mdr_id: str, order: InboundOrder
) -> tuple[InboundMessage, str]:
    known = state._inbound.get(mdr_id)
    if known is None:
        raise OrderError(
            404,
            f"no delivery has mdr_id {mdr_id!r} (the sandbox remembers the most "
            f"recent {state._inbound.size or 'all'} mdr_ids, until it stops or is reset): "
            "give the mdr_id of a delivery it answered, or leave 'mdr_id' out to "
            "deliver a new message",
        )
    check_redelivery(order, known.message)
    return known.message, known.url
