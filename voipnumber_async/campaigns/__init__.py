"""Campaigns: one input sent by many processes, paced and journaled together in Redis.

A campaign is cut into chunks (`chunks_of`), each sent by one task with `run_chunk`:
`send_many` with the account's shared `RedisPacer` and the campaign's `RedisJournal`.
Engine-neutral: `voipnumber_async.celery` runs the chunks on Celery workers; a taskiq
or arq job can call `run_chunk` itself. Needs the `redis` extra.
"""

from ._chunks import (
    DEFAULT_CHUNK_CONCURRENCY,
    DEFAULT_CHUNK_SIZE,
    Chunk,
    ChunkOptions,
    chunks_of,
    fingerprint,
)
from ._run import ChunkSummary, run_chunk

__all__ = [
    "DEFAULT_CHUNK_CONCURRENCY",
    "DEFAULT_CHUNK_SIZE",
    "Chunk",
    "ChunkOptions",
    "ChunkSummary",
    "chunks_of",
    "fingerprint",
    "run_chunk",
]
