"""Orders to deliver an inbound message (`POST /sandbox/inbound`), read and checked.

The endpoint is an extension of the sandbox, not of the service: a person types its
bodies into `curl`, so every mistake is answered with what is wrong and how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from .._models import InboundMessage, MessageType
from .._validation import E164
from .._wire.answers import load_json
from .._wire.requests import JSON_CONTENT_TYPE

__all__ = [
    "DEFAULT_INBOUND_BODY",
    "DEFAULT_INBOUND_FROM",
    "InboundOrder",
    "OrderError",
    "check_redelivery",
    "read_order",
]

DEFAULT_INBOUND_BODY: Final = "Hello from the sandbox"
DEFAULT_INBOUND_FROM: Final = "+447483866525"

#: The fields an order may have; any other is a typo worth saying so.
ORDER_FIELDS: Final = ("to", "from", "body", "type", "mdr_id")
_EXAMPLE: Final = '{"to": "+447476553275", "from": "+447483866525", "body": "Hello"}'


class OrderError(Exception):
    """An order the sandbox refuses: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@attrs.frozen(kw_only=True)
class InboundOrder:
    """What to deliver: a new message (`mdr_id` None), or a redelivery of `mdr_id`.

    The fields left out of the order are None; a new message gets the defaults.
    """

    to: str | None
    from_: str | None
    body: str | None
    type: str | None
    mdr_id: str | None


def _is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == JSON_CONTENT_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def read_order(content_type: str, body: bytes) -> InboundOrder:
    """The order in a request's body; `OrderError` saying what is wrong with it.

    Raises:
        OrderError: 415 for a body that is not declared JSON, 400 for one that is not a
            JSON object of the known fields with the right types (the message names the
            field, what it must be and what it was).
    """
    if not _is_json(content_type):
        raise OrderError(
            415,
            f"the order must be JSON, sent with Content-Type: application/json (got "
            f"{content_type or 'no Content-Type'!r}); with curl: -H 'Content-Type: "
            f"application/json' -d '{_EXAMPLE}'",
        )
    try:
        payload = load_json(body)
    except ValueError as error:
        raise OrderError(400, f"the order is not valid JSON ({error}); send {_EXAMPLE}") from None
    if not isinstance(payload, dict):
        raise OrderError(
            400, f"the order must be a JSON object such as {_EXAMPLE}, got {_json_kind(payload)}"
        )
    unknown = [name for name in payload if name not in ORDER_FIELDS]
    if unknown:
        raise OrderError(
            400,
            f"unknown field {unknown[0]!r} in the order: the fields are {', '.join(ORDER_FIELDS)}",
        )
    mdr_id = _text(payload, "mdr_id", "a non-empty string, the mdr_id of a delivery to redeliver")
    if mdr_id == "":
        raise OrderError(
            400, "'mdr_id' must be a non-empty string, the mdr_id of a delivery to redeliver"
        )
    to = _number(payload, "to")
    if to is None and mdr_id is None:
        raise OrderError(
            400,
            f"the order has no 'to': the number the message is for, one with a webhook "
            f"(such as {_EXAMPLE}); or give the 'mdr_id' of a delivery to redeliver it",
        )
    kind = _text(payload, "type", f"a string, {MessageType.SMS!r} or {MessageType.MMS!r}")
    if kind == "":
        raise OrderError(400, f"'type' must be {MessageType.SMS!r} or {MessageType.MMS!r}, got ''")
    return InboundOrder(
        to=to,
        from_=_number(payload, "from"),
        body=_text(payload, "body", "a string, the text of the message"),
        type=kind,
        mdr_id=mdr_id,
    )


def check_redelivery(order: InboundOrder, original: InboundMessage) -> None:
    """Refuse (409) an order for `original`'s `mdr_id` that describes another message.

    A redelivery is the same message again; an order that gives a field need not, but
    one that gives another value for it is a mistake, said so rather than ignored.
    """
    for field, given, delivered in (
        ("to", order.to, original.to),
        ("from", order.from_, original.from_),
        ("body", order.body, original.body),
        ("type", order.type, original.type),
    ):
        if given is not None and given != delivered:
            raise OrderError(
                409,
                f"mdr_id {original.mdr_id!r} was delivered with {field!r} {_short(delivered)}, "
                f"not {_short(given)}: a redelivery is the same message; leave {field!r} "
                "out to redeliver it, or leave 'mdr_id' out to deliver a new message",
            )


def _text(payload: Mapping[str, object], name: str, expected: str) -> str | None:
    value = payload.get(name)
    if value is None and name not in payload:
        return None
    if not isinstance(value, str):
        raise OrderError(400, f"{name!r} must be {expected}, got {_json_kind(value)}")
    return value


def _number(payload: Mapping[str, object], name: str) -> str | None:
    expected = "an E.164 number as a string, such as '+447476553275'"
    value = _text(payload, name, expected)
    if value is not None and E164.fullmatch(value) is None:
        raise OrderError(400, f"{name!r} must be {expected}, got {_short(value)}")
    return value


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    return "an array" if isinstance(value, list) else "an object"


def _short(text: str) -> str:
    """`text` quoted, cut short: an answer need not echo a megabyte back."""
    return repr(text) if len(text) <= 64 else f"{text[:64]!r}... ({len(text)} characters)"
