"""The feed: messages from the input, under the window, through the journal, to the workers.

One task: it takes a window slot, reads one message, and (with a journal, a batch at a
time) has its key reserved before it queues the job. A message is never queued for
sending before its reservation is committed; an invalid one gets its failure here.
"""

from __future__ import annotations

import asyncio

from .input import END, Input, Job, _End
from .journaling import RESERVE_BATCH, Reserving
from .messages import SendResult, default_key
from .results import Results

__all__ = ["Feed"]


class Feed:
    """Reads the input into the workers' queue until it ends, or until a stop."""

    def __init__(
        self, source: Input, results: Results, jobs: asyncio.Queue[Job | _End], *,
        reserving: Reserving | None,
    ) -> None:  # fmt: skip
        self._input = source
        self._results = results
        self._jobs = jobs
        self._reserving = reserving
        #: Set by a stop: nothing more is read, or queued.
        self.stopping = False
        #: A reservation is under way: a stop lets it commit (as a request on the wire).
        self.reserving_now = False

    async def run(self) -> None:
        """Feed every message, then tell the workers the jobs ended."""
        window, results, batch = self._results.window, self._results, []
        batch_size = RESERVE_BATCH if self._reserving is not None else 1
        while not self.stopping:
            await window.acquire()
            job = await self._input.next_job()
            if isinstance(job, _End):
                window.release()
                break
            results.pending[job.index] = job
            batch.append(job)
            if len(batch) >= batch_size:
                await self._queue(batch)
                batch = []
        if batch and not self.stopping:
            await self._queue(batch)
        self._jobs.put_nowait(END)

    async def _queue(self, batch: list[Job]) -> None:
        if self._reserving is None:
            for job in batch:
                job.key = default_key(job.message)
        else:
            self.reserving_now = True
            try:
                batch = await self._reserving.reserve(batch)
            finally:
                self.reserving_now = False
        if self.stopping:
            return  # reserved and not queued: each gets its stopped result
        for job in batch:
            if job.error is None:
                self._jobs.put_nowait(job)
            else:  # never sent; with a journal, its failure is recorded
                self._results.deliver(
                    SendResult(
                        index=job.index,
                        message=job.message,
                        error=job.error,
                        idempotency_key=job.key,
                    )
                )
