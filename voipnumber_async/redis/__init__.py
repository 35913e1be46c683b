"""State shared by many processes through Redis (`pip install "voipnumber[redis]"`).

- `RedisPacer`: one account's rate and 429 pause, shared by every process that uses
  the same key (`pacer_key(account_id)`), on every machine.
- `RedisJournal`: one named campaign's journal (positions reserved before sending,
  outcomes recorded), resumable from any process, with deterministic idempotency keys;
  `CampaignStatus` and `JournalRecord` are what it tells of the campaign.

Both raise `RedisUnavailableError` rather than send anything unpaced or unjournaled.
"""

from .._errors import RedisUnavailableError
from ._connection import RedisLike
from ._journal import (
    NOT_KEPT,
    RATE_WINDOW_S,
    RedisJournal,
    campaign_idempotency_key,
    campaign_key,
    campaign_keys,
)
from ._pacer import RedisPacer, pacer_key
from ._status import CampaignStatus, JournalRecord, Outcome

__all__ = [
    "NOT_KEPT",
    "RATE_WINDOW_S",
    "CampaignStatus",
    "JournalRecord",
    "Outcome",
    "RedisJournal",
    "RedisLike",
    "RedisPacer",
    "RedisUnavailableError",
    "campaign_idempotency_key",
    "campaign_key",
    "campaign_keys",
    "pacer_key",
]
