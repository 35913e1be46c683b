"""The webhook deliveries the service posts (documented): their headers and JSON.

Read into an `InboundMessage` with exact type checks (a delivery is input from the
network), and written back out for the sandbox's webhook client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from .._errors import InvalidPayloadError
from .._models import InboundMessage
from .dates import format_service_datetime, parse_service_datetime
from .requests import JSON_CONTENT_TYPE

#: The `Host` header the service sends with every delivery.
WEBHOOK_HOST: Final = "api.voipnumber.net"
#: The headers of a delivery, as documented.
WEBHOOK_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": JSON_CONTENT_TYPE,
    "Host": WEBHOOK_HOST,
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}
#: Every field of a delivery's JSON with its type; `from` is `from_` in the model.
INBOUND_FIELDS: Final = (
    ("status", str), ("from", str), ("to", str), ("type", str), ("body", str),
    ("mdr_timestamp_s", int), ("mdr_created", str), ("mdr_id", str),
)  # fmt: skip
_INBOUND_KNOWN: Final = frozenset(name for name, _ in INBOUND_FIELDS)


def structure_inbound(data: object) -> InboundMessage:
    """The `InboundMessage` a delivery's JSON stands for; `InvalidPayloadError` if none.

    Types are checked exactly (no `"123"` for a number, no `true` for a number): a
    delivery is input from the network, and a mistyped one is refused, not guessed at.
    """
    if not isinstance(data, dict):
        raise InvalidPayloadError(
            f"the delivery must be a JSON object, got a JSON {_json_kind(data)}"
        )
    for name, kind in INBOUND_FIELDS:
        if name not in data:
            raise InvalidPayloadError(f"the delivery has no {name!r} field", field=name)
        value = data[name]
        if type(value) is not kind:
            raise InvalidPayloadError(
                f"the delivery's {name!r} must be a JSON {_json_kind(kind())}, "
                f"got a JSON {_json_kind(value)}",
                field=name,
            )
    try:
        created = parse_service_datetime(data["mdr_created"])
    except ValueError as error:
        raise InvalidPayloadError(
            f"the delivery's 'mdr_created' is not a date: {error}", field="mdr_created"
        ) from None
    return InboundMessage(
        status=data["status"],
        from_=data["from"],
        to=data["to"],
        type=data["type"],
        body=data["body"],
        mdr_timestamp_s=data["mdr_timestamp_s"],
        mdr_created=created,
        mdr_id=data["mdr_id"],
        # Every known field is there (checked above), so the same count means no others.
        extra=(
            {}
            if len(data) == len(_INBOUND_KNOWN)
            else {key: value for key, value in data.items() if key not in _INBOUND_KNOWN}
        ),
    )


def unstructure_inbound(message: InboundMessage) -> dict[str, Any]:
    """A delivery's JSON for `message`, in the documented field order."""
    wire = {
        "status": message.status,
        "from": message.from_,
        "to": message.to,
        "type": message.type,
        "body": message.body,
        "mdr_timestamp_s": message.mdr_timestamp_s,
        "mdr_created": format_service_datetime(message.mdr_created),
        "mdr_id": message.mdr_id,
    }
    return {**wire, **message.extra}


def encode_inbound(message: InboundMessage) -> bytes:
    """The body of a delivery of `message`."""
    return json.dumps(unstructure_inbound(message)).encode()


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
