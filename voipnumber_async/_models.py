"""Value classes the SDK returns. They know nothing of HTTP; `_wire` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = ["InboundMessage", "MessageStatus", "MessageType", "SentMessage"]


class MessageStatus:
    """The message statuses the service documents. Others are kept as they come."""

    QUEUED = "queued"
    DELIVERED = "delivered"


@attrs.frozen(kw_only=True)
class SentMessage:
    """A message the service accepted.

    Attributes:
        id: The service's reference for the message (a UUID).
        status: `"queued"` when just sent, later `"delivered"`; an unknown status is
            kept exactly as the service wrote it.
        body: The text that was sent.
        timestamp_s: When the service accepted it, in seconds since the UNIX epoch.
        created: The same instant as a timezone-aware UTC `datetime`.
        extra: Fields of the answer this SDK does not know yet, kept as they came.
    """

    id: str
    status: str
    body: str
    timestamp_s: int
    created: datetime
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)


class MessageType:
    """The inbound message types the service documents. Others are kept as they come."""

    SMS = "sms"
    MMS = "mms"


@attrs.frozen(kw_only=True)
class InboundMessage:
    """An SMS or MMS received on one of your numbers, as the service delivered it.

    Attributes:
        status: `"received"`; another value is kept as the service wrote it.
        from_: The sender: usually an E.164 number, kept as the service wrote it
            (alphanumeric sender ids exist).
        to: Your number that received it.
        type: `"sms"` or `"mms"`; an unknown type is kept, not refused.
        body: The text (may be empty for an MMS).
        mdr_timestamp_s: When the service received it, in seconds since the UNIX epoch.
        mdr_created: The same instant as a timezone-aware UTC `datetime`.
        mdr_id: The id of the Messaging Data Record: unique per message, the same on
            every redelivery, so it is the key to deduplicate on.
        extra: Fields this SDK does not know yet, kept as they came.
    """

    status: str
    from_: str
    to: str
    type: str
    body: str
    mdr_timestamp_s: int
    mdr_created: datetime
    mdr_id: str
    extra: dict[str, Any] = attrs.field(factory=dict, hash=False)
