"""`RedisJournal`: one named campaign's journal in Redis, shared by every process that sends it.

A `Journal` (see `voipnumber_async._bulk.journal`) whose state lives in a few keys of
the campaign (`campaign_keys`), each operation one atomic Lua script (`_lua.py`). A
message sent costs one bit and a two-byte digest; only the positions not sent (in
flight, failed, unknown, stopped) keep a record. Idempotency keys are derived from
the campaign, the position and the content, so any process resuming the campaign
sends a message with the key it had.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from .._bulk.journal import JournalEntry, JournalMismatchError
from .._bulk.messages import OutgoingMessage, SendResult
from .._errors import ConfigurationError
from .._models import SentMessage
from . import _lua
from ._connection import REDIS_DOWN, RedisLike, open_redis, unavailable
from ._status import CampaignStatus, JournalRecord, Outcome

__all__ = [
    "KEY_PREFIX",
    "MAX_POSITIONS",
    "NOT_KEPT",
    "RATE_WINDOW_S",
    "RedisJournal",
    "campaign_idempotency_key",
    "campaign_key",
    "campaign_keys",
    "check_campaign",
    "position_digest",
]

#: What every key of a campaign starts with, before its `{name}`.
KEY_PREFIX: Final = "voipnumber:campaign:"
#: Seconds over which `CampaignStatus.rate_per_s` is measured.
RATE_WINDOW_S: Final = 10
#: The id of a message a resumed run finds sent when the journal does not keep sent
#: messages (`keep_sent=False`): the bitmap says it was sent, not as what.
NOT_KEPT: Final = ""
#: Positions a campaign may hold: its digests (two bytes each) fill a Redis string,
#: at most 512 MB.
MAX_POSITIONS: Final = 2**28
#: Positions read per script by `outcomes` and `results`: a script blocks Redis while
#: it runs, so a long range is read in steps of a millisecond or so.
READ_STEP: Final = 4096
_MAX_CAMPAIGN_LENGTH: Final = 200
_CAMPAIGN_NAME: Final = re.compile(rf"[^\s\x00-\x1f\x7f]{{1,{_MAX_CAMPAIGN_LENGTH}}}")
#: The unit separator between the fields of a state record.
_US: Final = "\x1f"
_KINDS: Final = {"sent": "S", "failed": "F", "unknown": "U", "not_sent": "N"}
_OUTCOMES: Final[dict[str, Outcome]] = {
    ".": "new", "s": "sent", "R": "reserved", "F": "failed", "U": "unknown", "N": "not_sent",
}  # fmt: skip
#: When a placeholder `SentMessage` says it was sent: not known, so the epoch.
_UNKNOWN_TIME: Final = datetime.fromtimestamp(0, timezone.utc)


def check_campaign(campaign: object) -> str:
    """`campaign`, if it can name a campaign: 1 to 200 characters, no whitespace or controls.

    Raises:
        ConfigurationError: It cannot (`field="campaign"`).
    """
    if not isinstance(campaign, str) or _CAMPAIGN_NAME.fullmatch(campaign) is None:
        raise ConfigurationError(
            f"a campaign name must be 1 to {_MAX_CAMPAIGN_LENGTH} characters with no "
            f"whitespace or control characters, got {campaign!r}",
            field="campaign",
        )
    return campaign


def campaign_key(campaign: str, part: str) -> str:
    """The Redis key of one part of a campaign's journal: `voipnumber:campaign:{name}:part`.

    The braces are literal: a Redis Cluster hashes only `name`, so all of a campaign's
    keys live in one slot and a script may use them together.
    """
    return f"{KEY_PREFIX}{{{check_campaign(campaign)}}}:{part}"


def campaign_keys(campaign: str) -> list[str]:
    """Every key the journal of `campaign` writes: `DEL` them all to forget the campaign."""
    return [campaign_key(campaign, part) for part in _lua.PARTS]


def _content(message: OutgoingMessage) -> str:
    # A message that fails its checks is journaled too (as failed): whatever its
    # fields hold, they make a text.
    fields = (message.from_, message.to, message.body)
    return _US.join(field if isinstance(field, str) else repr(field) for field in fields)


def campaign_idempotency_key(campaign: str, position: int, message: OutgoingMessage) -> str:
    """The key `message` at `position` of `campaign` is sent with, by every process, every time.

    Its own `idempotency_key` if it has one; otherwise `vn1-` and 32 hex digits of a
    BLAKE2b digest of the campaign, the position and the content (from, to, body): 36
    visible ASCII characters, within the contract's 255. A message re-sent after a
    crash (`resend_unknown=True`) carries the key it first had, so the service can
    tell it is the same message; the same message at another position, or in another
    campaign, gets another key.
    """
    if message.idempotency_key:
        return message.idempotency_key
    text = f"{campaign}\x00{position}\x00{_content(message)}"
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16)
    return "vn1-" + digest.hexdigest()


def position_digest(message: OutgoingMessage) -> bytes:
    """Two bytes that stand for `message` where it is journaled, checked when it is reserved again.

    Two bytes, not a full hash, keep a sent message's cost at one bit and two bytes:
    one position of another input goes unnoticed once in 65,536, but another input
    differs at many positions of a batch, and a batch is refused whole.
    """
    text = f"{_content(message)}{_US}{message.idempotency_key or ''}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=2).digest()


def _text(value: Any) -> str:
    """A reply's text: bytes from a client of ours, str from one with decode_responses."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _field(value: str | None) -> str:
    """`value` as a record field: a unit separator would split it, so it is replaced."""
    return "" if value is None else value.replace(_US, " ")


def _retrieve(task: asyncio.Future[Any]) -> None:
    # A shielded call whose caller was cancelled has nobody to see its error.
    if not task.cancelled():
        task.exception()


class RedisJournal:
    """The journal of one named campaign in Redis: resumable from any process, on any machine.

    ```py
    async with RedisJournal("redis://localhost:6379/0", "spring-sale") as journal:
        await journal.declare(total=len(messages), fingerprint=input_digest)
        async for result in client.sms.send_many(messages, journal=journal): ...
        print(await journal.status())
    ```

    Every method raises `RedisUnavailableError` when Redis does not answer: `reserve`
    raising it means nothing of that batch is sent, so a run stops with nothing sent
    unjournaled, and a run started again once Redis is back resumes the campaign
    (with what Redis kept: run it with persistence, `appendonly yes`).

    Usable after `aclose()`: it reconnects when next used.

    Args:
        redis: A `redis://` URL (the journal's own connection, closed by `aclose()`)
            or your `redis.asyncio.Redis` (used, never closed).
        campaign: The campaign's name: 1 to 200 characters, no whitespace.
        offset: Added to every position `send_many` passes: a worker sending the
            messages 5000 to 5999 of a campaign runs `send_many` over those 1,000
            with `offset=5000`, and the journal holds them at 5000 to 5999.
        keep_sent: Keep each sent message's id and key (about 90 more bytes each),
            for `results()` and for the messages a resumed run finds sent.

    Raises:
        ConfigurationError: A bad campaign name, offset or `redis`.
    """

    def __init__(
        self, redis: RedisLike, campaign: str, *, offset: int = 0, keep_sent: bool = False
    ) -> None:
        self.campaign = check_campaign(campaign)
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ConfigurationError(
                f"offset must be a whole number >= 0, got {offset!r}", field="offset"
            )
        self.offset = offset
        self.keep_sent = keep_sent
        self._redis, self._owned = open_redis(redis)
        self._keys = campaign_keys(campaign)
        register = self._redis.register_script
        self._reserve_script = register(_lua.RESERVE)
        self._record_script = register(_lua.RECORD)
        self._declare_script = register(_lua.DECLARE)
        self._status_script = register(_lua.STATUS)
        self._read_script = register(_lua.READ)

    async def __aenter__(self) -> RedisJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the journal's own connection (not a client you gave it). Safe to call twice."""
        if self._owned:
            await self._redis.aclose()

    def __repr__(self) -> str:
        return f"RedisJournal(campaign={self.campaign!r}, offset={self.offset})"

    # --- what the campaign is -------------------------------------------------------

    async def declare(self, total: int | None = None, fingerprint: str | None = None) -> None:
        """Record the campaign's number of messages and a fingerprint of its input, the first time.

        Later, check them: a campaign is one input. `None` leaves that one unchecked
        (and unset). The fingerprint is yours to choose: a hash of the input file, a
        query and its date... Call it before sending: per position, the journal checks
        only a two-byte digest of each message (`position_digest`).

        Raises:
            JournalMismatchError: The campaign was declared with another total or
                fingerprint: it is another input. Nothing is changed.
            RedisUnavailableError: Redis did not answer.
        """
        if total is not None and (
            isinstance(total, bool) or not isinstance(total, int) or total < 0
        ):
            raise ConfigurationError(
                f"total must be a whole number >= 0, got {total!r}", field="total"
            )
        if fingerprint is not None and (not isinstance(fingerprint, str) or not fingerprint):
            raise ConfigurationError("fingerprint must be a non-empty str", field="fingerprint")
        args = ["" if total is None else str(total), fingerprint or ""]
        reply = await self._call("declare the campaign", self._declare_script(
            keys=[self._keys[4]], args=args))  # fmt: skip
        if _text(reply[0]) != "ok":
            what, had = _text(reply[0]), _text(reply[1])
            given = args[0] if what == "total" else args[1]
            raise JournalMismatchError(
                f"campaign {self.campaign!r} was declared with {what} {had!r}, not {given!r}: "
                "this is another input. Give a new campaign a new name, or resume this "
                "one with the same input.",
                field="campaign",
            )

    # --- the Journal protocol -------------------------------------------------------

    async def reserve(
        self, start: int, messages: Sequence[OutgoingMessage], *, resend_unknown: bool = False
    ) -> list[JournalEntry]:
        """See `Journal.reserve`: one script checks the whole batch, then reserves it.

        A position found sent is answered with a placeholder `SentMessage`: id
        `NOT_KEPT` (or the id kept with `keep_sent=True`), status `"queued"`, the
        input's body and time 0; the journal keeps which positions were sent, not the
        service's answers.

        Raises:
            JournalMismatchError: A position holds a different message.
            RedisUnavailableError: Redis did not answer: nothing was reserved.
        """
        if not messages:
            return []
        first = self._position(start, len(messages))
        keys = [
            campaign_idempotency_key(self.campaign, first + i, message)
            for i, message in enumerate(messages)
        ]
        digests = b"".join(position_digest(message) for message in messages)
        args: list[bytes | str | int] = [
            first,
            len(messages),
            digests,
            int(resend_unknown),
            int(self.keep_sent),
            *keys,
        ]
        reply = await self._call(
            "reserve messages", self._reserve_script(keys=self._keys, args=args)
        )
        if _text(reply[0]) == "mismatch":
            position = int(reply[1])
            raise JournalMismatchError(
                f"message {position - self.offset} (campaign position {position}) differs "
                f"from the one campaign {self.campaign!r} journaled there: this is another "
                "input (or another order). Give a new campaign a new name, or resume "
                "this one with the same input.",
                field="campaign",
            )
        kept = iter(reply[2:])
        entries = []
        for index, (code, key, message) in enumerate(
            zip(_text(reply[1]), keys, messages, strict=True)
        ):
            position = start + index
            if code == "r":
                entries.append(JournalEntry(position=position, idempotency_key=key,
                                            outcome="reserved"))  # fmt: skip
            elif code == "u":
                entries.append(JournalEntry(position=position, idempotency_key=key,
                                            outcome="unknown"))  # fmt: skip
            else:
                message_id = _text(next(kept)).split(_US)[0] if self.keep_sent else NOT_KEPT
                sent = SentMessage(id=message_id, status="queued", body=message.body,
                                   timestamp_s=0, created=_UNKNOWN_TIME)  # fmt: skip
                entries.append(JournalEntry(position=position, idempotency_key=key,
                                            outcome="sent", sent=sent))  # fmt: skip
        return entries

    async def record(self, results: Sequence[SendResult]) -> None:
        """See `Journal.record`: one script for the batch; a replay changes nothing.

        Raises:
            RedisUnavailableError: Redis did not answer (the run ends; the batch comes
                again with the next call).
        """
        if not results:
            return
        args: list[bytes | str | int] = [int(self.keep_sent), RATE_WINDOW_S]
        for result in results:
            position = self._position(result.index, 1)
            key = result.idempotency_key or campaign_idempotency_key(
                self.campaign, position, result.message
            )
            error = result.error
            error_class = error_code = message_id = ""
            if result.sent is not None:
                message_id = _field(result.sent.id)
            elif error is not None:
                error_class, error_code = _field(type(error).__name__), _field(error.code)
            kind = _KINDS[result.outcome]
            args += [position, kind, position_digest(result.message), _field(key),
                     error_class, error_code, message_id]  # fmt: skip
        await self._call("record outcomes", self._record_script(keys=self._keys, args=args))

    # --- reading it, from anywhere --------------------------------------------------

    async def status(self) -> CampaignStatus:
        """The campaign's totals now, in one read (O(1), whatever its size).

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        keys = [self._keys[3], self._keys[4], self._keys[6]]
        counts_flat, meta, in_window = await self._call(
            "read the campaign's status", self._status_script(keys=keys, args=[RATE_WINDOW_S])
        )
        counts = {
            _text(counts_flat[i]): int(counts_flat[i + 1]) for i in range(0, len(counts_flat), 2)
        }
        total_text, _, started, updated, _ = meta
        total = None if total_text is None else int(total_text)
        sent, unknown, reserved = (counts.get(name, 0) for name in ("sent", "unknown", "reserved"))
        failed_by_class = {
            name.removeprefix("failed:"): count
            for name, count in sorted(counts.items())
            if name.startswith("failed:") and count
        }
        remaining = None
        if total is not None:
            decided = sent + sum(failed_by_class.values()) + unknown + reserved
            remaining = max(0, total - decided)
        return CampaignStatus(
            campaign=self.campaign, total=total, sent=sent, failed_by_class=failed_by_class,
            unknown=unknown, reserved=reserved, remaining=remaining,
            rate_per_s=int(in_window) / RATE_WINDOW_S,
            started_at=None if started is None else float(_text(started)),
            updated_at=None if updated is None else float(_text(updated)),
        )  # fmt: skip

    async def outcomes(self, start: int, stop: int) -> list[Outcome]:
        """What the journal holds for each campaign position from `start` to `stop` (excluded).

        Campaign positions: `offset` is not added (it shifts only what `send_many`
        passes). Read `READ_STEP` positions per step, each step consistent.

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        outcomes: list[Outcome] = []
        for step in range(max(0, start), stop, READ_STEP):
            codes, _ = await self._read(step, min(stop, step + READ_STEP))
            outcomes += [_OUTCOMES[code] for code in codes]
        return outcomes

    async def results(self) -> AsyncIterator[JournalRecord]:
        """Every journaled position, in order, with what the journal holds for it.

        Read `READ_STEP` positions per step, so it runs alongside the campaign's
        senders (each step consistent, not the whole); about a second per million
        positions. Sent messages carry their key and id only with `keep_sent=True`.

        Raises:
            RedisUnavailableError: Redis did not answer.
        """
        last = await self._call("read the campaign", self._redis.hget(self._keys[4], "last"))
        stop = 0 if last is None else int(last) + 1
        for step in range(0, stop, READ_STEP):
            codes, details = await self._read(step, min(stop, step + READ_STEP))
            detail = iter(details)
            for position, code in enumerate(codes, step):
                if code != ".":
                    yield _journal_record(position, code, _text(next(detail)))

    # --- the calls ------------------------------------------------------------------

    async def _read(self, start: int, stop: int) -> tuple[str, list[Any]]:
        keys = [self._keys[0], self._keys[2], self._keys[5]]
        codes, details = await self._call(
            "read the campaign",
            self._read_script(keys=keys, args=[start, stop, int(self.keep_sent)]),
        )
        return _text(codes), list(details)

    def _position(self, start: int, count: int) -> int:
        """The campaign position of `start`, checked with the `count` after it."""
        first = self.offset + start
        if first < 0 or first + count > MAX_POSITIONS:
            raise ConfigurationError(
                f"campaign positions must be 0 to {MAX_POSITIONS - 1}; this would be "
                f"{first} to {first + count - 1}",
                field="offset",
            )
        return first

    async def _call(self, what: str, call: Awaitable[Any]) -> Any:
        """`call`'s answer, or `RedisUnavailableError` if Redis did not give one.

        Shielded: a cancelled caller (a stop) leaves the script to finish, rather than
        the connection between a command and its answer.
        """
        task = asyncio.ensure_future(self._answer(what, call))
        task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    @staticmethod
    async def _answer(what: str, call: Awaitable[Any]) -> Any:
        try:
            return await call
        except (*REDIS_DOWN, asyncio.TimeoutError) as error:
            raise unavailable(what, error) from error


def _journal_record(position: int, code: str, detail: str) -> JournalRecord:
    """The record of one position, from its code and detail (see `_lua.READ`)."""
    outcome = _OUTCOMES[code]
    if code == "s":
        message_id, _, key = detail.partition(_US)
        return JournalRecord(
            position=position, outcome=outcome,
            idempotency_key=key or None, message_id=message_id or None,
        )  # fmt: skip
    _, key, *error = detail.split(_US)
    error_class, error_code = [*error, "", ""][:2]
    return JournalRecord(
        position=position, outcome=outcome, idempotency_key=key,
        error_class=error_class or None, error_code=error_code or None,
    )  # fmt: skip
