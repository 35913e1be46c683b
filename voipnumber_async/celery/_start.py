"""Starting a campaign: declare it in its journal, then enqueue its chunks as Celery tasks."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

import attrs
from celery import Celery

from .._bulk import MessageLike
from .._config import LOGGER_NAME
from ..campaigns import DEFAULT_CHUNK_SIZE, Chunk, ChunkOptions, chunks_of
from ..campaigns import fingerprint as fingerprint_of
from ..redis import RedisJournal
from ..redis._journal import check_campaign
from ._app import VISIBILITY_TIMEOUT_S, longest_chunk_s, redis_url_of
from ._tasks import SEND_CHUNK

__all__ = ["CampaignStart", "start_campaign"]

logger = logging.getLogger(f"{LOGGER_NAME}.celery")

#: Outcomes after which a message is not sent again by a resumed campaign.
_SETTLED: Final = frozenset({"sent"})


@attrs.frozen(kw_only=True)
class CampaignStart:
    """What `start_campaign` did.

    Attributes:
        campaign: The campaign's name.
        total: Its messages.
        chunks: Its chunks.
        enqueued: Chunks enqueued now.
        skipped: Chunks left out: every message of them was sent already (a resume),
            or (with `only_unknown`) none of them has an unknown outcome.
    """

    campaign: str
    total: int
    chunks: int
    enqueued: int
    skipped: int


async def start_campaign(
    app: Celery,
    name: str,
    messages: Iterable[MessageLike],
    *,
    options: ChunkOptions,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    only_unknown: bool = False,
    queue: str | None = None,
    expected_processes: int | None = None,
) -> CampaignStart:
    """Start (or resume) the campaign `name`: one `send_chunk` task per `chunk_size` messages.

    The campaign's journal (`RedisJournal(name)`, in the app's Redis) is declared with
    the fingerprint of its first chunk before anything is enqueued, and with its size
    once all is read, so a different input under the same name is refused here: one
    with another first chunk before anything is enqueued, a longer one at its first
    chunk past the end, a shorter one at the end (its chunks are the campaign's own
    positions, checked again, message by message, when they run).

    Starting the same campaign again resumes it: chunks whose messages were all sent
    are not enqueued, and in the others each message already sent is skipped by its
    worker. Start it again only once its chunks are done or lost (a queue emptied, a
    worker machine gone): a chunk enqueued twice and run twice at once sends nothing
    twice (the second run finds the first's reservations and does not send them), but
    may count them as unknown until the first run records them.

    Args:
        app: A Celery app `configure`d for campaigns (its broker receives the tasks).
        name: The campaign's name: its journal, and part of every message's key.
        messages: The messages, read once, lazily (a list, a generator, a CSV reader).
        options: The rate (the account's, shared by every worker), concurrency per
            chunk and `resend_unknown`, for every chunk.
        chunk_size: Messages per task.
        only_unknown: Enqueue only the chunks holding a message of unknown outcome,
            with `resend_unknown` (the CLI's `campaign resend-unknown`).
        queue: The Celery queue to send the tasks to; default the app's.
        expected_processes: Worker processes that will share the rate; with a rate,
            a warning is logged when a chunk could outlast the broker's visibility
            timeout at that share.

    Raises:
        JournalMismatchError: The campaign holds another input.
        RedisUnavailableError: Redis could not be reached; nothing was enqueued.
        ConfigurationError: A bad name, chunk size or option.
    """
    check_campaign(name)
    if only_unknown:
        options = attrs.evolve(options, resend_unknown=True)
    _warn_if_chunks_outlast_visibility(app, chunk_size, options, expected_processes)
    journal = RedisJournal(redis_url_of(app), name)
    chunks = enqueued = skipped = total = 0
    declared: int | None = None
    try:
        for chunk in chunks_of(name, messages, chunk_size):
            if chunks == 0:
                await journal.declare(total=None, fingerprint=fingerprint_of(chunk.messages))
                # Declared by an earlier start: a longer input is refused at its first
                # extra chunk, before that chunk is enqueued.
                declared = (await journal.status()).total
            if declared is not None and chunk.stop > declared:
                await journal.declare(total=chunk.stop, fingerprint=None)  # raises
            chunks += 1
            total = chunk.stop
            if await _can_skip(journal, chunk, only_unknown=only_unknown):
                skipped += 1
                continue
            app.send_task(SEND_CHUNK, args=chunk.to_task(), kwargs=options.to_task(), queue=queue)
            enqueued += 1
        await journal.declare(total=total, fingerprint=None)
    finally:
        await journal.aclose()
    logger.info(
        "campaign %r: %d messages in %d chunks; %d enqueued, %d already done",
        name, total, chunks, enqueued, skipped,
    )  # fmt: skip
    return CampaignStart(
        campaign=name, total=total, chunks=chunks, enqueued=enqueued, skipped=skipped
    )


async def _can_skip(journal: RedisJournal, chunk: Chunk, *, only_unknown: bool) -> bool:
    outcomes = await journal.outcomes(chunk.offset, chunk.stop)
    if only_unknown:
        return "unknown" not in outcomes and "reserved" not in outcomes
    return all(outcome in _SETTLED for outcome in outcomes)


def _warn_if_chunks_outlast_visibility(
    app: Celery, chunk_size: int, options: ChunkOptions, processes: int | None
) -> None:
    longest = longest_chunk_s(chunk_size, options.rate, processes or 1)
    transport = app.conf.broker_transport_options or {}
    visibility = float(transport.get("visibility_timeout", VISIBILITY_TIMEOUT_S))
    if longest > visibility / 2:
        logger.warning(
            "a chunk of %d messages at %.4g msg/s shared by %d processes takes up to %.0f s, "
            "more than half the broker's visibility timeout (%.0f s): a chunk still "
            "running could be handed to a second worker; use smaller chunks or raise "
            "broker_transport_options['visibility_timeout']",
            chunk_size, options.rate, processes or 1, longest, visibility,
        )  # fmt: skip
