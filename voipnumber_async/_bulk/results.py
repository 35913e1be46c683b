"""The results stage: every result to the caller, counted, journaled, in order if asked.

It also holds the run's one throttle, the window: a message takes a slot when it is
read from the input and gives it back when its result is yielded, so at most `window`
messages are ever between the input and the caller, whatever the input's length.
"""

from __future__ import annotations

import asyncio
from typing import Final

from .._errors import RunStoppedError
from .input import Job
from .messages import BulkSummary, SendResult, stopped_result

__all__ = ["Failure", "Results"]


class Failure:
    """What ends a run with an error (the input's, the journal's) instead of its results."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Done:
    pass


_DONE: Final = _Done()


class Results:
    """Results on their way to the caller, and the messages taken that have none yet."""

    def __init__(self, summary: BulkSummary, *, window: int, ordered: bool) -> None:
        self.summary = summary
        #: Taken by the input stage per message read, given back per result yielded.
        self.window = asyncio.Semaphore(window)
        #: Every message taken that has no result yet: what a stop gives a result.
        self.pending: dict[int, Job] = {}
        #: Results delivered since the journal last took them (None: no journal).
        self.unrecorded: list[SendResult] | None = None
        self._ordered = ordered
        self._reorder: dict[int, SendResult] = {}
        self._next_index = 0
        self._queue: asyncio.Queue[SendResult | Failure | _Done] = asyncio.Queue()

    def deliver(self, result: SendResult, *, record: bool = True) -> None:
        """Count `result`, hand it to the journal (if `record`), and queue it for the caller."""
        _count(self.summary, result)
        if record and self.unrecorded is not None:
            self.unrecorded.append(result)
        del self.pending[result.index]
        if not self._ordered:
            self._queue.put_nowait(result)
            return
        self._reorder[result.index] = result
        while self._next_index in self._reorder:
            self._queue.put_nowait(self._reorder.pop(self._next_index))
            self._next_index += 1

    def deliver_stopped(self) -> None:
        """Give every message still pending a stopped result: it was not sent.

        Only a reserved one (it has its key) is journaled: the others have no entry.
        """
        for job in list(self.pending.values()):
            result = stopped_result(job.index, job.message, job.key, may_have_been_sent=False)
            self.deliver(result, record=job.key is not None)

    def end(self, failure: Failure | None = None) -> None:
        """No result follows: the caller's iteration ends (with `failure`'s error, if given)."""
        self._queue.put_nowait(_DONE if failure is None else failure)

    async def next(self) -> SendResult | Failure | None:
        """The next result (its window slot given back); a `Failure`; or None at the end."""
        queue = self._queue
        item = queue.get_nowait() if queue.qsize() else await queue.get()
        if isinstance(item, SendResult):
            self.window.release()
            return item
        return None if isinstance(item, _Done) else item


def _count(summary: BulkSummary, result: SendResult) -> None:
    if result.sent is not None:
        if result.resumed:
            summary.already_sent += 1
        else:
            summary.sent += 1
    elif result.error is not None and result.error.may_have_been_sent:
        summary.unknown += 1
    elif isinstance(result.error, RunStoppedError):
        summary.not_sent += 1
    elif result.error is not None:
        summary.failed[type(result.error).__name__] += 1
    summary.results += 1
