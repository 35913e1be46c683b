"""Value classes the SDK returns. They know nothing of HTTP; `_wire` builds them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = ["MessageStatus", "SentMessage"]


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
