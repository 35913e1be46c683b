"""State shared by many processes through Redis (`pip install "voipnumber[redis]"`).

- `RedisPacer`: one account's rate and 429 pause, shared by every process that uses
  the same key (`pacer_key(account_id)`), on every machine.
- `RedisJournal`: one named campaign's journal (positions reserved before sending,
  outcomes recorded), resumable from any process, with deterministic idempotency keys.

Both raise `RedisUnavailableError` rather than send anything unpaced or unjournaled.
"""

from .._errors import RedisUnavailableError
from ._connection import RedisLike
from ._pacer import RedisPacer, pacer_key

__all__ = ["RedisLike", "RedisPacer", "RedisUnavailableError", "pacer_key"]
