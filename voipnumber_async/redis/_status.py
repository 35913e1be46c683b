"""What a campaign's journal tells: `CampaignStatus` (its totals), `JournalRecord` (one message)."""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["CampaignStatus", "JournalRecord", "Outcome"]

Outcome = Literal["new", "reserved", "sent", "failed", "unknown", "not_sent"]
"""What the journal holds for a position.

`new`: never journaled. `reserved`: committed and being sent (or left so by a crash:
a resume reports it unknown). `sent`, `failed` (certainly not sent; a resume sends it
again), `unknown` (may have been sent), `not_sent` (a stop came before sending it; a
resume sends it).
"""


@attrs.frozen(kw_only=True)
class CampaignStatus:
    """A campaign's totals, read in one step from its journal (O(1), from any process).

    Attributes:
        campaign: The campaign's name.
        total: Its number of messages, as declared (`RedisJournal.declare`); `None`
            if it never was.
        sent: Messages sent.
        failed_by_class: Messages whose last attempt failed (certainly not sent), by
            error class name (`"InvalidRequestError"`, ...).
        unknown: Messages that may have been sent (outcome unknown).
        reserved: Messages reserved and not yet recorded: in flight now, or left so
            by a process that died (a resume reports those unknown).
        remaining: Messages not yet sent nor tried: `total` minus all of the above
            (stopped ones included); `None` without a `total`. Failed messages are
            not counted here, though a resume tries them again.
        rate_per_s: Messages recorded sent per second, over the last
            `RATE_WINDOW_S` seconds (Redis's clock).
        started_at: When the first outcome was recorded (UNIX seconds, Redis's
            clock); `None` before.
        updated_at: When the last outcome was recorded; `None` before.
    """

    campaign: str
    total: int | None
    sent: int
    failed_by_class: dict[str, int] = attrs.field(factory=dict, hash=False)
    unknown: int = 0
    reserved: int = 0
    remaining: int | None = None
    rate_per_s: float = 0.0
    started_at: float | None = None
    updated_at: float | None = None

    @property
    def failed(self) -> int:
        """Messages failed, of any class."""
        return sum(self.failed_by_class.values())

    @property
    def done(self) -> bool:
        """Whether every declared message has an outcome and none is in flight.

        False while `total` is unknown. Done is not all sent: see `failed` and `unknown`.
        """
        return self.remaining == 0 and self.reserved == 0


@attrs.frozen(kw_only=True)
class JournalRecord:
    """What the journal holds for one journaled position (`RedisJournal.results()`).

    Attributes:
        position: The message's position in the campaign (offsets applied).
        outcome: See `Outcome` (never `new`: those are not listed).
        idempotency_key: The key it is sent with; `None` for a sent message unless
            the journal keeps sent messages (`keep_sent=True`).
        message_id: The service's id of a sent message, if kept; else `None`.
        error_class: For `failed`: the error's class name; else `None`.
        error_code: For `failed`: the service's error code, if it gave one.
    """

    position: int
    outcome: Outcome
    idempotency_key: str | None = None
    message_id: str | None = None
    error_class: str | None = None
    error_code: str | None = None
