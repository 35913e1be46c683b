"""One chunk of a campaign sent by one process: `send_many` with the shared pacer and journal.

Engine-neutral: the Celery task calls `run_chunk`, and a taskiq or arq job can too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._bulk import BulkSummary
from .._client import AsyncVoipNumber
from .._errors import RedisUnavailableError
from ..redis import RedisJournal, RedisLike, RedisPacer, pacer_key
from ..redis._connection import open_redis
from ._chunks import Chunk, ChunkOptions

__all__ = ["ChunkSummary", "run_chunk"]


@attrs.frozen(kw_only=True)
class ChunkSummary:
    """What one run of a chunk did (a task's return value, as JSON via `to_dict`).

    Attributes:
        campaign, offset, size: Which chunk.
        sent: Messages this run sent.
        already_sent: Messages an earlier run had sent (not sent again).
        failed: Messages certainly not sent, by error class name.
        unknown: Messages whose outcome is unknown (reported, not sent again unless
            `resend_unknown`).
        not_sent: Messages the run stopped before sending.
        attempts: Requests made.
    """

    campaign: str
    offset: int
    size: int
    sent: int
    already_sent: int
    failed: Mapping[str, int]
    unknown: int
    not_sent: int
    attempts: int

    @classmethod
    def of(cls, chunk: Chunk, summary: BulkSummary) -> ChunkSummary:
        return cls(
            campaign=chunk.campaign,
            offset=chunk.offset,
            size=len(chunk.messages),
            sent=summary.sent,
            already_sent=summary.already_sent,
            failed=dict(summary.failed),
            unknown=summary.unknown,
            not_sent=summary.not_sent,
            attempts=summary.attempts,
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


async def run_chunk(
    chunk: Chunk,
    options: ChunkOptions,
    *,
    redis: RedisLike,
    client: AsyncVoipNumber,
    rerun: bool = False,
) -> ChunkSummary:
    """Send `chunk` through `client`, paced by the account's `RedisPacer`, journaled in Redis.

    What an earlier run of the chunk sent is skipped (the journal says so); every
    message carries its deterministic key (`campaign_key`).

    Args:
        chunk: The messages and their campaign positions.
        options: The campaign's rate, concurrency and `resend_unknown`.
        redis: Where the campaign's journal and the account's pacer live.
        client: Sends the messages; used, not closed.
        rerun: The chunk ran before and did not finish (its process died, or Redis
            failed it): its messages of unknown outcome, those it had reserved and
            never recorded among them, are sent again with their original keys, which
            the service answers with its first answer instead of sending twice.
            Without it they stay `unknown`.

    Raises:
        RedisUnavailableError: Redis could not be reached to pace or journal; nothing
            was sent unpaced or unjournaled. Run the chunk again later.
        JournalMismatchError: The campaign's journal holds other messages at these
            positions.
    """
    connection, owned = open_redis(redis)
    journal = RedisJournal(connection, chunk.campaign, offset=chunk.offset)
    pacer = RedisPacer(connection, rate=options.rate, key=pacer_key(client.account_id))
    try:
        run = client.sms.send_many(
            chunk.messages,
            concurrency=options.concurrency,
            rate_limit=pacer,
            journal=journal,
            resend_unknown=options.resend_unknown or rerun,
        )
        async with run as results:
            async for _ in results:
                pass
        summary = ChunkSummary.of(chunk, run.summary)
    finally:
        await pacer.aclose()
        await journal.aclose()
        if owned:
            await connection.aclose()
    if summary.failed.get(RedisUnavailableError.__name__):
        # The pacer gave up on a message: retrying the chunk later sends it (the
        # journal recorded it as not sent).
        raise RedisUnavailableError(
            f"Redis did not answer the pacer for {summary.failed[RedisUnavailableError.__name__]} "
            f"messages of chunk {chunk.offset}..{chunk.stop - 1} of {chunk.campaign!r}; they "
            "were not sent. Run the chunk again once Redis is back."
        )
    return summary
