"""`AsyncSendMany`: one bulk run, wiring the stages together and stopping them as one."""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections.abc import AsyncIterable, Iterable
from types import TracebackType
from typing import Any, Final, Literal

from .._errors import ConfigurationError
from .._rate import ChainedPacer, LocalPacer, Pacer
from .._sender import Sender
from .._telemetry import BulkSpan, start_bulk
from .feed import Feed
from .input import Input, Job, _End
from .journal import Journal
from .journaling import RESERVE_BATCH, Recording, Reserving
from .messages import BulkSummary, MessageLike, SendResult
from .results import Failure, Results
from .sqlite import SqliteJournal
from .workers import Workers

__all__ = ["DEFAULT_CONCURRENCY", "DRAIN_TIMEOUT_S", "AsyncSendMany"]

DEFAULT_CONCURRENCY: Final = 50
#: How long a stopping run lets requests in flight finish, in seconds.
DRAIN_TIMEOUT_S: Final = 5.0


class AsyncSendMany:
    """The results of `client.sms.send_many(...)`, yielded as they complete.

    An async iterator, and an async context manager that stops the run cleanly when
    left early (`break`, an exception): prefer `async with`. `summary` holds the
    running totals; `stop()` ends the run early and still yields a result for every
    message taken.
    """

    summary: BulkSummary
    """The totals so far; final once the iteration ended."""

    def __init__(
        self,
        sender: Sender,
        messages: Iterable[MessageLike] | AsyncIterable[MessageLike],
        *,
        concurrency: int,
        rate_limit: float | Pacer | None,
        journal: str | os.PathLike[str] | Journal | None,
        ordered: bool,
        resend_unknown: bool,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be a whole number >= 1, got {concurrency!r}", field="concurrency"
            )
        self._pacer: Pacer | None
        if rate_limit is None or isinstance(rate_limit, Pacer):
            self._pacer = rate_limit  # None: the client's pacer alone
        else:
            self._pacer = ChainedPacer(sender.pacer, LocalPacer(rate_limit))
        if not isinstance(messages, (Iterable, AsyncIterable)):
            raise ConfigurationError(
                f"messages must be an iterable or async iterable, got {type(messages).__name__}",
                field="messages",
            )
        if not (journal is None or isinstance(journal, (str, os.PathLike, Journal))):
            raise ConfigurationError(
                "journal must be a path or a Journal (with async reserve and record), "
                f"got {type(journal).__name__}",
                field="journal",
            )
        self._sender = sender
        self._messages = messages
        self._concurrency = concurrency
        self._journal_given = journal
        self._ordered = ordered
        self._resend_unknown = resend_unknown
        self.summary = BulkSummary()
        self._state: Literal["new", "running", "closed"] = "new"
        self._stop_requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The journal this run opened (from a path), and so closes.
        self._own_journal: SqliteJournal | None = None
        self._tasks: list[asyncio.Future[Any]] = []
        self._halting: asyncio.Future[None] | None = None
        #: The run's parent span (None: no OpenTelemetry SDK configured).
        self._telemetry: BulkSpan | None = None
        #: What ended the run with an error, for its span.
        self._failure: BaseException | None = None

    # --- iteration ------------------------------------------------------------------

    def __aiter__(self) -> AsyncSendMany:
        return self

    async def __anext__(self) -> SendResult:
        """The next result; `StopAsyncIteration` once every message taken has one."""
        if self._state == "new":
            await self._start()
        elif self._state == "closed":
            raise StopAsyncIteration
        try:
            item = await self._results.next()
        except asyncio.CancelledError:
            await self._close()
            raise
        if isinstance(item, SendResult):
            return item
        if isinstance(item, Failure):
            self._failure = item.error
        await self._close()
        if isinstance(item, Failure):
            raise item.error
        raise StopAsyncIteration

    def stop(self) -> None:
        """End the run early; keep iterating to get a result for every message taken.

        No request starts after this. Requests on the wire may finish for a few seconds
        (`DRAIN_TIMEOUT_S`); any still unanswered then is cancelled, its outcome
        unknown. Every other message taken from the input (waiting for its turn, a
        backoff, a 429 pause or a connection, or not yet started) gets a result whose
        error is a `RunStoppedError`, recorded in the journal as not sent, so that a
        resumed run sends it. The input is read no further.

        Safe to call from any thread and from a signal handler; does nothing once
        the run is over.
        """
        loop = self._loop
        if self._state == "new":
            self._stop_requested = True  # a run starting now stops once it has
            if loop is None:
                self._state = "closed"  # never started: nothing taken, nothing to yield
            return
        if loop is None or self._state != "running":
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            self._begin_stop()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._begin_stop)

    async def aclose(self) -> None:
        """Stop the run early, leaving the journal consistent. Safe to call twice.

        As `stop()`, then the results not yet yielded are dropped: the journal has
        each of them (messages not sent are recorded so, and a resumed run sends them).
        """
        await self._close()

    async def __aenter__(self) -> AsyncSendMany:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if getattr(self, "_state", "closed") != "running" or self._loop is None:
            return
        warnings.warn(  # noqa: B028 - in a finalizer the stack says nothing useful
            "send_many was left before its end without being closed; its requests in flight "
            "were cancelled. Use `async with client.sms.send_many(...) as results:`",
            ResourceWarning,
            source=self,
        )
        for task in self._tasks:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(task.cancel)
        if self._telemetry is not None:
            # Else the span never ends, and a trace shows the run as still going.
            self._telemetry.abandon(self.summary)

    # --- the stages -----------------------------------------------------------------

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.summary = BulkSummary()
        source = Input(self._messages)
        journal = self._journal_given
        try:
            source.open()
            if isinstance(journal, (str, os.PathLike)):
                journal = self._own_journal = await SqliteJournal.open(journal)
        except BaseException:
            self._state = "closed"  # nothing was started: nothing to stop
            raise
        self._state = "running"
        self._telemetry = start_bulk(self._sender.account_id, self._concurrency)
        if self._telemetry is None:
            self._start_stages(source, journal)
        else:
            # The tasks copy the context they are created in: each message's send span
            # is then a child of the run's.
            with self._telemetry.activate():
                self._start_stages(source, journal)

    def _start_stages(self, source: Input, journal: Journal | None) -> None:
        # Messages read and not yet yielded: in flight, queued, and (with a journal)
        # the batches being reserved, with room to spare.
        window = 4 * self._concurrency + (4 * RESERVE_BATCH if journal is not None else 0)
        self._results = results = Results(self.summary, window=window, ordered=self._ordered)
        jobs: asyncio.Queue[Job | _End] = asyncio.Queue()
        reserving = recording = None
        if journal is not None:
            reserving = Reserving(journal, results, resend_unknown=self._resend_unknown)
            recording = Recording(journal, results)
        self._recording = recording
        self._feed = Feed(source, results, jobs, reserving=reserving)
        self._feeding = asyncio.create_task(self._feed.run())
        self._workers = Workers(
            self._sender, self._pacer, jobs, results=results, recording=recording
        )
        self._workers.start(self._concurrency)
        self._tasks = [self._feeding, *self._workers.tasks]
        self._recorder = None if recording is None else asyncio.ensure_future(recording.run())
        if self._recorder is not None:
            self._tasks.append(self._recorder)
        self._supervisor = asyncio.ensure_future(self._supervise())
        if self._stop_requested:
            self._begin_stop()

    async def _supervise(self) -> None:
        """End the results once the feed and the workers are done, or fail them and stop.

        The first error of any stage (the input's, the journal's, a worker's) fails the
        run at once: no stage goes on sending beside a dead one.
        """
        stages = [self._feeding, *self._workers.tasks]
        watched = [*stages, *([self._recorder] if self._recorder is not None else [])]
        try:
            # `wait`, not `await`: a stop cancels this task, and must not cancel the
            # feed's reservation or the workers' requests with it (they are let finish).
            while True:
                for task in watched:
                    if task.done():
                        task.result()  # the error of a stage that failed, if one did
                if all(stage.done() for stage in stages):
                    break
                await asyncio.wait(
                    [task for task in watched if not task.done()],
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if self._recording is not None:
                await self._recording.flush()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._results.end(Failure(error))
            self._begin_stop()  # the other stages stop now, not when the caller notices
            return
        self._results.end()

    # --- stopping -------------------------------------------------------------------

    def _begin_stop(self) -> None:
        if self._state == "running" and self._halting is None:
            self._halting = asyncio.ensure_future(self._halt())

    async def _halt(self) -> None:
        """Stop every task; give each message taken a result; then end the iteration.

        The feed reads nothing more, and workers waiting (for a job, a turn, a backoff,
        a 429 pause, a connection) are cancelled at once; a reservation under way and
        requests on the wire finish (no further attempt) within `DRAIN_TIMEOUT_S`,
        else are cancelled too.
        """
        self.summary.finished_at = time.monotonic()
        self._supervisor.cancel()
        self._feed.stopping = True
        draining = self._workers.stop()
        if self._feed.reserving_now:
            draining.append(self._feeding)
        else:
            self._feeding.cancel()
        if draining:
            _, late = await asyncio.wait(draining, timeout=DRAIN_TIMEOUT_S)
            for late_task in late:
                late_task.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, self._supervisor, return_exceptions=True)
        self._results.deliver_stopped()
        if self._recording is not None:
            await self._recording.flush()
        self._results.end()

    async def _close(self) -> None:
        if self._state != "running":
            self._state = "closed"
            return
        self._begin_stop()
        assert self._halting is not None
        try:
            # Shielded: a second Ctrl-C must not leave the journal half written.
            await asyncio.shield(self._halting)
        finally:
            self._state = "closed"
            if self._telemetry is not None:
                self._telemetry.finish(self.summary, self._failure)
            if self._own_journal is not None:
                await self._own_journal.aclose()
