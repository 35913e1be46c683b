"""The Celery task that sends one chunk of a campaign: `voipnumber.campaigns.send_chunk`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from celery import Task, shared_task

from .._client import AsyncVoipNumber
from .._config import LOGGER_NAME
from .._errors import RedisUnavailableError
from ..campaigns import Chunk, ChunkOptions, ChunkSummary, run_chunk
from ._app import redis_url_of

__all__ = ["SEND_CHUNK", "send_chunk"]

logger = logging.getLogger(f"{LOGGER_NAME}.celery")

#: The task's name, as `start_campaign` enqueues it.
SEND_CHUNK: Final = "voipnumber.campaigns.send_chunk"
#: Seconds between tries of a chunk while Redis is down: doubling, at most this.
MAX_RETRY_DELAY_S: Final = 60.0


@shared_task(
    bind=True,
    name=SEND_CHUNK,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    max_retries=None,
)
def send_chunk(
    self: Task[Any, Any], /, campaign: str, offset: int, rows: list[list[str]], **options: Any
) -> dict[str, Any]:
    """Send one chunk of a campaign (enqueued by `start_campaign`); its summary as a dict.

    Credentials come from the worker's environment (`VOIPNUMBER_ACCOUNT_ID`,
    `VOIPNUMBER_API_TOKEN`, `VOIPNUMBER_BASE_URL`), never from the task's arguments,
    which the broker stores. While Redis is down the chunk is retried, every time
    later (up to a minute apart), for as long as it takes: nothing is sent meanwhile.
    A chunk run again (redelivered after its worker died, or retried) sends again,
    with their original keys, its messages of unknown outcome.
    """
    chunk = Chunk.from_task(campaign, offset, rows)
    chunk_options = ChunkOptions(**options)
    # Run before (its worker died, or Redis failed it): what it reserved and never
    # recorded may have gone, so it goes again with the same keys.
    rerun = bool((self.request.delivery_info or {}).get("redelivered")) or self.request.retries > 0
    logger.info(
        "chunk %d..%d of %r: starting%s",
        chunk.offset, chunk.stop - 1, chunk.campaign, " again" if rerun else "",
    )  # fmt: skip
    try:
        summary = asyncio.run(_send(chunk, chunk_options, redis_url_of(self.app), rerun))
    except RedisUnavailableError as error:
        delay = min(MAX_RETRY_DELAY_S, 2.0 ** min(self.request.retries, 6))
        logger.warning(
            "chunk %d..%d of %r: %s; trying again in %.0f s",
            chunk.offset, chunk.stop - 1, chunk.campaign, error, delay,
        )  # fmt: skip
        raise self.retry(countdown=delay, exc=error) from None
    logger.info(
        "chunk %d..%d of %r: %d sent, %d already sent, %d failed, %d unknown",
        chunk.offset, chunk.stop - 1, chunk.campaign, summary.sent, summary.already_sent,
        sum(summary.failed.values()), summary.unknown,
    )  # fmt: skip
    return summary.to_dict()


async def _send(chunk: Chunk, options: ChunkOptions, redis: str, rerun: bool) -> ChunkSummary:
    async with AsyncVoipNumber() as client:
        return await run_chunk(chunk, options, redis=redis, client=client, rerun=rerun)
