"""The cattrs converter between wire JSON and the SDK's models; unknown fields go to `extra`.

One private converter (not cattrs' global one), built once: `SentMessage` both ways, and
`InboundMessage` through the exact checks of `inbound`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from .._models import InboundMessage, SentMessage
from .dates import format_service_datetime, parse_service_datetime
from .inbound import structure_inbound, unstructure_inbound


def make_converter() -> cattrs.Converter:
    """The converter between wire JSON and the SDK's models. Unknown fields go to `extra`."""
    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, lambda value, _: _to_datetime(value))
    converter.register_unstructure_hook(datetime, format_service_datetime)

    known = frozenset(field.name for field in attrs.fields(SentMessage)) - {"extra"}
    structure_known = make_dict_structure_fn(SentMessage, converter)

    def structure_sent_message(data: Mapping[str, Any], _: type[SentMessage]) -> SentMessage:
        split = {key: data[key] for key in known if key in data}
        split["extra"] = {key: value for key, value in data.items() if key not in known}
        return structure_known(split, SentMessage)

    def unstructure_sent_message(message: SentMessage) -> dict[str, Any]:
        # Every field but `created` is a str or an int: each unstructures as itself.
        return {
            **message.extra,
            "status": message.status,
            "body": message.body,
            "timestamp_s": message.timestamp_s,
            "created": format_service_datetime(message.created),
            "id": message.id,
        }

    converter.register_structure_hook(SentMessage, structure_sent_message)
    converter.register_unstructure_hook(SentMessage, unstructure_sent_message)
    converter.register_structure_hook(InboundMessage, lambda data, _: structure_inbound(data))
    converter.register_unstructure_hook(InboundMessage, unstructure_inbound)
    return converter


def _to_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_service_datetime(value)
    raise TypeError(f"expected a date string, got {type(value).__name__}")


#: The converter for every model.
converter: Final = make_converter()
