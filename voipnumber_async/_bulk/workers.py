"""The workers: `concurrency` tasks, each taking the next job and sending it through the `Sender`.

A worker makes every message it takes one result. A stop cancels a worker that waits
(for a job, its pacer's turn, a backoff, a connection), and its message is not sent;
one whose request is on the wire is told to make no further attempt, and let finish.
"""

from __future__ import annotations

import asyncio

from .._errors import VoipNumberError
from .._rate import Pacer
from .._sender import Sender, SendWatch, Stopped
from .input import END, Job, _End
from .journaling import Recording
from .messages import BulkSummary, SendResult, stopped_result
from .results import Results

__all__ = ["Workers"]


class Workers:
    """The run's worker tasks over one queue of jobs."""

    def __init__(
        self, sender: Sender, pacer: Pacer | None, jobs: asyncio.Queue[Job | _End], *,
        results: Results, recording: Recording | None,
    ) -> None:  # fmt: skip
        self._sender = sender
        self._pacer = pacer
        self._jobs = jobs
        self._results = results
        self._recording = recording
        self.tasks: list[asyncio.Task[None]] = []
        self._watches: list[SendWatch] = []

    def start(self, concurrency: int) -> None:
        """Start `concurrency` workers."""
        self._watches = [SendWatch() for _ in range(concurrency)]
        self.tasks = [asyncio.ensure_future(self._work(watch)) for watch in self._watches]

    def stop(self) -> list[asyncio.Task[None]]:
        """Cancel the waiting workers; the ones with a request on the wire, to let finish."""
        on_wire = []
        for task, watch in zip(self.tasks, self._watches, strict=True):
            if task.done():
                continue
            if watch.on_wire:
                watch.stopping = True
                on_wire.append(task)
            else:
                task.cancel()
        return on_wire

    async def _work(self, watch: SendWatch) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get_nowait() if jobs.qsize() else await jobs.get()
            if isinstance(job, _End):
                jobs.put_nowait(END)  # for the next worker
                return
            self._results.deliver(await self._send(job, watch))
            if watch.stopping:
                return  # let finish, as a request on the wire, and now done: take no other
            if self._recording is not None and self._recording.behind:
                await self._recording.flush()

    async def _send(self, job: Job, watch: SendWatch) -> SendResult:
        assert job.key is not None
        watch.may_have_been_sent = False
        try:
            sent = await self._sender.send(
                job.payload, job.key, pacer=self._pacer, watch=watch,
                from_=job.message.from_, to=job.message.to,
            )  # fmt: skip
        except VoipNumberError as error:
            return SendResult(index=job.index, message=job.message, error=error,
                              idempotency_key=job.key)  # fmt: skip
        except Stopped:
            return stopped_result(job.index, job.message, job.key,
                                  may_have_been_sent=watch.may_have_been_sent)  # fmt: skip
        except BaseException:
            # Cancelled while waiting (nothing sent) or on the wire past the drain; or an
            # error no send should raise (a pacer's, a transport's bug), which ends the
            # run: either way the message gets its result, unknown if it may have gone.
            self._results.deliver(stopped_result(
                job.index, job.message, job.key, may_have_been_sent=watch.may_have_been_sent
            ))  # fmt: skip
            raise
        finally:
            _count_attempts(self._results.summary, watch)
        return SendResult(index=job.index, message=job.message, sent=sent,
                          idempotency_key=job.key)  # fmt: skip


def _count_attempts(summary: BulkSummary, watch: SendWatch) -> None:
    summary.attempts += watch.attempts
    summary.rate_limited += watch.rate_limited
    watch.attempts = watch.rate_limited = 0
