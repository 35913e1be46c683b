"""The journal stage: keys reserved ahead of the workers in batches, outcomes recorded behind.

Without a journal each message keeps its own key or gets a fresh one, and nothing is
recorded; with one, `Reserving` asks it for a batch of keys (and learns what earlier
runs did), and `Recording` commits the results in batches.
"""

from __future__ import annotations

import asyncio
from typing import Final

from .input import Job
from .journal import Journal
from .messages import SendResult, unknown_from_earlier_run
from .results import Results

__all__ = ["RECORD_BATCH", "RESERVE_BATCH", "Recording", "Reserving"]

#: Messages reserved in the journal per call, ahead of the workers.
RESERVE_BATCH: Final = 128
#: Results buffered before a worker waits for them to be committed.
RECORD_BATCH: Final = 512
#: How often buffered results are committed anyway, in seconds.
RECORD_INTERVAL_S: Final = 0.2


class Reserving:
    """Reserves batches of jobs; delivers those an earlier run decided (sent, unknown)."""

    def __init__(self, journal: Journal, results: Results, *, resend_unknown: bool) -> None:
        self._journal = journal
        self._results = results
        self._resend_unknown = resend_unknown

    async def reserve(self, batch: list[Job]) -> list[Job]:
        """The jobs of `batch` to send, each with its key, once the journal committed them.

        Raises:
            JournalMismatchError: From the journal: the batch is of another input.
        """
        entries = await self._journal.reserve(
            batch[0].index, [job.message for job in batch], resend_unknown=self._resend_unknown
        )
        reserved = []
        for job, entry in zip(batch, entries, strict=True):
            job.key = key = entry.idempotency_key
            if entry.outcome == "reserved":
                reserved.append(job)
            elif entry.outcome == "sent" and entry.sent is not None:
                self._results.deliver(
                    SendResult(index=job.index, message=job.message, sent=entry.sent,
                               idempotency_key=key, resumed=True),
                    record=False,
                )  # fmt: skip
            else:
                self._results.deliver(
                    unknown_from_earlier_run(job.index, job.message, key), record=False
                )
        return reserved


class Recording:
    """Commits delivered results to the journal: every `RECORD_INTERVAL_S`, or when many wait."""

    def __init__(self, journal: Journal, results: Results) -> None:
        self._journal = journal
        self._results = results
        results.unrecorded = []
        # One `record` call at a time: the periodic flush and a worker's may meet.
        self._lock = asyncio.Lock()

    @property
    def behind(self) -> bool:
        """Whether so many results wait that a worker should wait for their commit."""
        unrecorded = self._results.unrecorded
        return unrecorded is not None and len(unrecorded) >= RECORD_BATCH

    async def flush(self) -> None:
        """Commit every result delivered so far."""
        async with self._lock:
            results = self._results
            if results.unrecorded:
                batch, results.unrecorded = results.unrecorded, []
                try:
                    await self._journal.record(batch)
                except BaseException:
                    # Cancelled (a stop) or failed: the batch is recorded by the next
                    # flush, the stop's last one, not lost with this call.
                    results.unrecorded[:0] = batch
                    raise

    async def run(self) -> None:
        """Flush periodically, until cancelled."""
        while True:
            await asyncio.sleep(RECORD_INTERVAL_S)
            await self.flush()
