"""Bulk sending: `client.sms.send_many(...)`, a bounded pipeline with a journal.

```
input ──producer──▶ queue (concurrency) ──▶ workers (concurrency) ──▶ results ──▶ caller
           │  window: messages taken but not yet yielded (bounds memory)  ▲
           └─ journal: keys committed before sending ─ outcomes after ─────┘
```

The input is read lazily, one message at a time, and never more than `window` ahead
of what the caller has consumed, so memory does not grow with the input. Every
attempt (retries included) goes through the client's one send path
(`_sender.Sender`), which asks the run's pacer for a turn: a 429 pauses every worker.

A stop (`stop()`, `aclose()`, a cancelled iteration) starts no further request: a
worker that is waiting is cancelled, and its message is not sent; only a request on
the wire may finish, within a drain; every message taken gets one result, and the
journal records the unsent ones as such.

Hand-offs between tasks cost per batch, not per message. Without a journal, from a
plain (not async) iterable, there is no producer: a worker that finds no message ready
reads the next few itself. Otherwise the producer fills the queue up to `concurrency`
jobs and sleeps until the workers have drained it to half that. The window is kept
the same way, from the caller's side.
"""

from __future__ import annotations

import asyncio
import os
import time
import warnings
from collections import Counter, deque
from collections.abc import AsyncIterable, Awaitable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Union

import attrs

from ._errors import (
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    RunStoppedError,
    VoipNumberError,
)
from ._journal import (
    Journal,
    JournalEntry,
    Outcome,
    RecordRow,
    content_hash,
    outcome_row,
    sent_message_row,
)
from ._models import SentMessage
from ._rate import ChainedPacer, LocalPacer, Pacer
from ._sender import Sender, SendWatch, Stopped
from ._validation import check_body, check_idempotency_key, check_number
from ._wire.convert import converter
from ._wire.requests import encode_send_request, new_idempotency_key

__all__ = [
    "DEFAULT_CONCURRENCY",
    "AsyncSendMany",
    "BulkSummary",
    "JournalMismatchError",
    "MessageLike",
    "OutgoingMessage",
    "SendResult",
]

DEFAULT_CONCURRENCY: Final = 50
#: Messages reserved in the journal per transaction, ahead of the workers.
_RESERVE_BATCH: Final = 128
#: Reserved batches being committed while the workers take from the queue.
_RESERVE_AHEAD: Final = 2
#: Messages a worker reads at once when it finds none ready (no journal).
_READ_BATCH: Final = 32
#: Outcomes buffered before a worker waits for them to be committed.
_RECORD_BATCH: Final = 512
#: How often buffered outcomes are committed anyway, in seconds.
_RECORD_INTERVAL_S: Final = 0.2
#: How long a stopping run lets requests in flight finish, in seconds.
DRAIN_TIMEOUT_S: Final = 5.0


class JournalMismatchError(ConfigurationError):
    """The journal was written for another input: a position holds a different message.

    Resuming would mix two campaigns, so nothing is sent. Use a new journal file for a
    new input, or the same input (in the same order) to resume.
    """


@attrs.frozen(kw_only=True)
class OutgoingMessage:
    """One message to send in bulk.

    Attributes:
        from_: The sending number, E.164, on your account.
        to: The recipient, E.164.
        body: The text.
        idempotency_key: Your key for this message; by default one is made for it (and
            kept in the journal, if there is one).
    """

    from_: str
    to: str
    body: str
    idempotency_key: str | None = None

    @classmethod
    def coerce(cls, value: MessageLike) -> OutgoingMessage:
        """An `OutgoingMessage` from itself, a tuple, or a dict.

        A tuple is `(from_, to, body)` or `(from_, to, body, idempotency_key)`; a dict
        has `from_` (or `from`), `to`, `body` and optionally `idempotency_key`.

        Raises:
            InvalidRequestError: `value` is none of these.
        """
        if isinstance(value, OutgoingMessage):
            return value
        if type(value) is tuple and len(value) == 3:  # the usual bulk input, checked first
            return cls(from_=value[0], to=value[1], body=value[2])
        if isinstance(value, Mapping):
            return cls(
                from_=value.get("from_", value.get("from")),
                to=value.get("to"),  # type: ignore[arg-type]
                body=value.get("body"),  # type: ignore[arg-type]
                idempotency_key=value.get("idempotency_key"),
            )
        if isinstance(value, tuple) and len(value) in (3, 4):
            return cls(
                from_=value[0], to=value[1], body=value[2],
                idempotency_key=value[3] if len(value) == 4 else None,
            )  # fmt: skip
        raise InvalidRequestError(
            "each message must be an OutgoingMessage, a (from_, to, body) tuple or a dict "
            f"with from_, to and body; got {type(value).__name__}",
            field="messages",
        )


MessageLike = Union[OutgoingMessage, tuple[str, str, str], Mapping[str, Any]]  # noqa: UP007
"""What `send_many` accepts for each message."""


@attrs.frozen(kw_only=True)
class SendResult:
    """What became of one input message.

    Attributes:
        index: Its position in the input, from 0.
        message: The message.
        sent: The message as the service queued it; `None` if it was not sent.
        error: Why not; `may_have_been_sent` tells a failure from an unknown outcome,
            and a `RunStoppedError` a message the run was stopped before sending.
        idempotency_key: The key it was (or would have been) sent with.
        resumed: Decided by the journal of an earlier run, not by a request now: sent
            then, or an unknown outcome reported for review.
    """

    index: int
    message: OutgoingMessage
    sent: SentMessage | None = None
    error: VoipNumberError | None = None
    idempotency_key: str | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        """Whether the message was sent (now or in an earlier run)."""
        return self.sent is not None

    @property
    def outcome(self) -> Literal["sent", "failed", "unknown", "not_sent"]:
        """What became of the message, in a word.

        `sent`; `failed` (certainly not sent); `unknown` (may have been sent); or
        `not_sent`: the run was stopped before sending it, and a resume sends it.
        """
        if self.sent is not None:
            return "sent"
        error = self.error
        if error is not None and error.may_have_been_sent:
            return "unknown"
        return "not_sent" if isinstance(error, RunStoppedError) else "failed"


@attrs.define(kw_only=True)
class BulkSummary:
    """The running totals of a `send_many` run.

    Attributes:
        results: Results yielded so far (one per input message, in the end).
        sent: Messages sent by this run.
        already_sent: Messages the journal showed sent by an earlier run.
        failed: Messages certainly not sent, by error class name.
        unknown: Messages that may have been sent (outcome unknown).
        not_sent: Messages the run was stopped before sending (`RunStoppedError`).
        attempts: Requests made, retries included.
        rate_limited: 429 answers the run's requests were given.
        elapsed_s: Seconds since the run started.
    """

    results: int = 0
    sent: int = 0
    already_sent: int = 0
    failed: Counter[str] = attrs.field(factory=Counter)
    unknown: int = 0
    not_sent: int = 0
    attempts: int = 0
    rate_limited: int = 0
    started_at: float = attrs.field(factory=time.monotonic, repr=False)
    finished_at: float | None = attrs.field(default=None, repr=False)

    @property
    def failed_total(self) -> int:
        """Messages certainly not sent, of any class (those not sent by a stop aside)."""
        return sum(self.failed.values())

    @property
    def retried(self) -> int:
        """Requests beyond each message's first."""
        return max(0, self.attempts - (self.sent + self.failed_total + self.unknown))

    @property
    def elapsed_s(self) -> float:
        """Seconds from the start to the end (or to now, while running)."""
        return (self.finished_at or time.monotonic()) - self.started_at

    @property
    def rate(self) -> float:
        """Results per second."""
        return self.results / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def all_sent(self) -> bool:
        """Whether every message was sent (in this run or an earlier one)."""
        return self.failed_total == 0 and self.unknown == 0 and self.not_sent == 0


class _Job:
    """One message taken from the input; its key and request body once it may be sent."""

    __slots__ = ("index", "key", "message", "payload")

    def __init__(
        self, index: int, message: OutgoingMessage, key: str | None = None, payload: bytes = b""
    ) -> None:
        self.index = index
        self.message = message
        self.key = key
        self.payload = payload


class _End:
    pass


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END: Final = _End()


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
        journal: str | os.PathLike[str] | None,
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
        self._sender = sender
        self._messages = messages
        self._concurrency = concurrency
        self._journal_path = journal
        self._ordered = ordered
        self._resend_unknown = resend_unknown
        self.summary = BulkSummary()
        self._state: Literal["new", "running", "closed"] = "new"
        self._journal: Journal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Future[Any]] = []
        self._halting: asyncio.Future[None] | None = None
        self._stop_requested = False
        #: Every message taken from the input that has no result yet: what a stop
        #: gives a `RunStoppedError` result (recorded as unsent).
        self._pending: dict[int, _Job] = {}
        self._records: list[RecordRow] = []

    # --- iteration ------------------------------------------------------------------

    def __aiter__(self) -> AsyncSendMany:
        return self

    async def __anext__(self) -> SendResult:
        """The next result; `StopAsyncIteration` once every message taken has one."""
        if self._state == "new":
            await self._start()
        elif self._state == "closed":
            raise StopAsyncIteration
        results = self._results
        try:
            item = results.get_nowait() if results.qsize() else await results.get()
        except asyncio.CancelledError:
            await self._close()
            raise
        if isinstance(item, SendResult):
            self._yielded += 1
            if self._room_wanted is not None:
                self._make_room()
            return item
        await self._close()
        if isinstance(item, _Failure):
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

    # --- the pipeline -------------------------------------------------------------------

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.summary = BulkSummary()
        # Without a journal, a plain iterable is read by the workers: no producer.
        messages: Iterator[MessageLike] | None = None
        try:
            if self._journal_path is not None:
                self._journal = await Journal.open(self._journal_path)
            elif not isinstance(self._messages, AsyncIterable):
                messages = iter(self._messages)
        except BaseException:
            self._state = "closed"  # nothing was started: nothing to stop
            raise
        self._state = "running"
        # In flight, queued, and the batches being reserved, with room to spare.
        reserving = (_RESERVE_AHEAD + 2) * _RESERVE_BATCH if self._journal is not None else 0
        # Messages read from the input and not yet yielded: at most `window`. Once it is
        # full, reading resumes when a quarter of it has been yielded.
        self._window = 4 * self._concurrency + reserving
        self._window_low = self._window - max(1, self._window // 4)
        self._taken = self._yielded = 0
        # Jobs ready for the workers. A producer stops adding at `concurrency` (with a
        # journal, once a reserved batch is in) and resumes at half that.
        self._queue: deque[_Job] = deque()
        self._queue_high = self._concurrency
        self._queue_low = self._concurrency // 2
        # Every message read and its job queued (or a stop): workers end when it is empty.
        self._input_done = False
        # Set when the producer queued jobs, for workers that found none.
        self._jobs_queued = asyncio.Event()
        # Set when what the producer (or a reading worker) sleeps for has drained.
        self._room = asyncio.Event()
        self._room_wanted: Literal["window", "queue"] | None = None
        self._stopping = False
        self._results: asyncio.Queue[SendResult | _End | _Failure] = asyncio.Queue()
        self._reorder: dict[int, SendResult] = {}
        self._next_index = 0
        self._producer: asyncio.Future[None] | None = None
        if messages is None:
            self._producer = asyncio.ensure_future(self._produce())
        self._watches = [SendWatch() for _ in range(self._concurrency)]
        self._workers = [
            asyncio.ensure_future(self._work(messages, watch)) for watch in self._watches
        ]
        self._tasks = [*self._workers]
        if self._producer is not None:
            self._tasks.append(self._producer)
        if self._journal is not None:
            self._tasks.append(asyncio.ensure_future(self._record_periodically()))
        self._supervisor = asyncio.ensure_future(self._supervise())
        if self._stop_requested:
            self._begin_stop()

    async def _supervise(self) -> None:
        try:
            if self._producer is not None:
                await self._producer
            # `wait`, not `gather`: a stop cancels this task, and must not cancel the
            # workers with it (those on the wire are let finish).
            await asyncio.wait(self._workers)
            for worker in self._workers:
                worker.result()  # the first error of a worker, if one failed
            await self._flush_records()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._results.put_nowait(_Failure(error))
            return
        self._results.put_nowait(_END)

    async def _work(self, messages: Iterator[MessageLike] | None, watch: SendWatch) -> None:
        """A worker: send the next job queued, until the input is done.

        With `messages` (no journal, a plain iterable) there is no producer: a worker
        that finds no job queued reads the next few messages itself. Nothing is awaited
        while it does, so the workers share the iterator safely and each message gets
        the next index.
        """
        queue = self._queue
        while not self._stopping:
            if queue:
                job = queue.popleft()
                if self._room_wanted is not None:
                    self._make_room()
                await self._send_job(job, watch)
            elif self._input_done:
                return
            elif messages is None:  # the producer's to fill
                self._jobs_queued.clear()
                await self._jobs_queued.wait()
            elif self._taken - self._yielded >= self._window:
                await self._wait_for_room("window")
            else:
                self._read_batch(messages)

    def _read_batch(self, messages: Iterator[MessageLike]) -> None:
        for _ in range(min(_READ_BATCH, self._window - (self._taken - self._yielded))):
            value = next(messages, _END)
            if isinstance(value, _End):
                self._input_done = True
                return
            job = self._take(value)
            if job is not None:
                self._queue.append(job)

    async def _produce(self) -> None:
        if self._journal is not None:
            await self._produce_reserved(self._journal)
        else:
            async for value in _aiter(self._messages):
                job = self._take(value)
                if job is not None:
                    self._queue_job(job)
                await self._wait_for_room("queue")
                await self._wait_for_room("window")
        self._input_done = True
        self._jobs_queued.set()

    def _queue_job(self, job: _Job) -> None:
        self._queue.append(job)
        self._jobs_queued.set()

    def _take(self, value: MessageLike) -> _Job | None:
        """Count a message read from the input; its job, or None if it is invalid."""
        index = self._taken
        self._taken += 1
        message = OutgoingMessage.coerce(value)
        job = _Job(index, message, message.idempotency_key or new_idempotency_key())
        self._pending[index] = job
        return job if self._prepare(job) else None

    def _has_room(self, room_for: Literal["window", "queue"]) -> bool:
        if room_for == "window":
            return self._taken - self._yielded < self._window
        return len(self._queue) < self._queue_high

    async def _wait_for_room(self, room_for: Literal["window", "queue"]) -> None:
        """Sleep until the window (or the queue) has drained to its low mark."""
        while not (self._has_room(room_for) or self._stopping):
            self._room_wanted = room_for
            self._room.clear()
            await self._room.wait()

    def _make_room(self) -> None:
        """Wake whoever sleeps for room, if what they wait for has drained to its low mark."""
        if self._room_wanted == "window":
            drained = self._taken - self._yielded <= self._window_low
        else:
            drained = len(self._queue) <= self._queue_low
        if drained:
            self._room_wanted = None
            self._room.set()

    async def _produce_reserved(self, journal: Journal) -> None:
        batch: list[_Job] = []
        # Batches whose reservation is being committed, their jobs waiting for it: the
        # journal's thread writes these while the workers take from the queue, so the
        # queue does not run dry for the length of a commit.
        reserving: deque[tuple[Awaitable[None], list[_Job]]] = deque()
        try:
            async for value in _aiter(self._messages):
                if self._taken - self._yielded >= self._window:
                    await self._wait_for_room("window")
                    if self._stopping:
                        break  # `value` was read but not taken: the input's next message
                index = self._taken
                self._taken += 1
                job = _Job(index, OutgoingMessage.coerce(value))
                self._pending[index] = job
                batch.append(job)
                if len(batch) >= _RESERVE_BATCH:
                    reserving.append(await self._reserve(journal, batch))
                    batch = []
                    if len(reserving) > _RESERVE_AHEAD:
                        await self._queue_jobs(*reserving.popleft())
            if batch:
                reserving.append(await self._reserve(journal, batch))
            while reserving:
                await self._queue_jobs(*reserving.popleft())
        finally:
            # Stopped with reservations still being committed: their jobs get their
            # results from the stop; a write that failed is not news to anyone now.
            for reservation, _ in reserving:
                if isinstance(reservation, asyncio.Future):
                    reservation.add_done_callback(_retrieve)

    async def _queue_jobs(self, reservation: Awaitable[None], jobs: list[_Job]) -> None:
        await reservation  # committed before anything is sent
        await self._wait_for_room("queue")
        self._queue.extend(jobs)
        self._jobs_queued.set()

    def _prepare(self, job: _Job) -> bool:
        """Make `job`'s request body; False if it is invalid (its result is then delivered)."""
        try:
            job.payload = _payload(job.message)
        except InvalidRequestError as error:
            self._deliver(SendResult(index=job.index, message=job.message, error=error,
                                     idempotency_key=job.key))  # fmt: skip
            return False
        return True

    async def _reserve(
        self, journal: Journal, batch: list[_Job]
    ) -> tuple[Awaitable[None], list[_Job]]:
        """Validate, consult and reserve in the journal: the jobs, once it is committed."""
        first, last = batch[0].index, batch[-1].index
        entries = {}
        # Only an earlier run's positions have entries: a fresh journal is never read.
        if journal.last_position is not None and first <= journal.last_position:
            entries = await journal.entries(first, last)
        reserve: list[tuple[int, str, str]] = []
        jobs: list[_Job] = []
        for job in batch:
            message = job.message
            entry = entries.get(job.index)
            digest = content_hash(message.from_, message.to, message.body, message.idempotency_key)
            if entry is not None and entry.content_hash != digest:
                raise JournalMismatchError(
                    f"message {job.index} differs from the one journal {self._journal_path!s} "
                    "recorded at that position: this is another input (or another order). "
                    "Use a new journal file for a new campaign.",
                    field="journal",
                )
            job.key = (
                entry.idempotency_key if entry else message.idempotency_key or new_idempotency_key()
            )
            if entry is not None and self._from_journal(job, entry):
                continue
            # An invalid one too: its failure is recorded.
            reserve.append((job.index, digest, job.key))
            if self._prepare(job):
                jobs.append(job)
        return journal.reserve(reserve), jobs

    def _from_journal(self, job: _Job, entry: JournalEntry) -> bool:
        """Yield what an earlier run decided for `job`; `False` if it must be sent."""
        index, message = job.index, job.message
        if entry.outcome == "sent" and entry.sent is not None:
            sent = converter.structure({"body": message.body, **entry.sent}, SentMessage)
            self._deliver(
                SendResult(index=index, message=message, sent=sent,
                           idempotency_key=entry.idempotency_key, resumed=True),
                record=False,
            )  # fmt: skip
            return True
        if entry.outcome in ("pending", "unknown") and not self._resend_unknown:
            error = OutcomeUnknownError(
                "an earlier run stopped before this message's outcome was known: it may "
                "have been sent. Review it, or resume with resend_unknown=True to send it "
                "again with its original idempotency key",
                idempotency_key=entry.idempotency_key,
            )
            self._deliver(
                SendResult(index=index, message=message, error=error,
                           idempotency_key=entry.idempotency_key, resumed=True),
                record=False,
            )  # fmt: skip
            return True
        return False

    async def _send_job(self, job: _Job, watch: SendWatch) -> None:
        assert job.key is not None
        watch.may_have_been_sent = False
        result: SendResult
        try:
            sent = await self._sender.send(job.payload, job.key, pacer=self._pacer, watch=watch)
        except VoipNumberError as error:
            result = SendResult(index=job.index, message=job.message, error=error,
                                idempotency_key=job.key)  # fmt: skip
        except Stopped:
            result = self._stopped_result(job, watch.may_have_been_sent)
        except asyncio.CancelledError:
            # Stopped while waiting (nothing sent), or on the wire past the drain.
            self._deliver(self._stopped_result(job, watch.may_have_been_sent))
            self._count_attempts(watch)
            raise
        else:
            result = SendResult(index=job.index, message=job.message, sent=sent,
                                idempotency_key=job.key)  # fmt: skip
        self._count_attempts(watch)
        self._deliver(result)
        if len(self._records) >= _RECORD_BATCH:
            await self._flush_records()

    def _count_attempts(self, watch: SendWatch) -> None:
        self.summary.attempts += watch.attempts
        self.summary.rate_limited += watch.rate_limited
        watch.attempts = watch.rate_limited = 0

    def _stopped_result(self, job: _Job, may_have_been_sent: bool) -> SendResult:
        if may_have_been_sent:
            error: VoipNumberError = OutcomeUnknownError(
                "the run was stopped while this message's request was on the wire: it may "
                "have been sent. Review it, or resume with resend_unknown=True to send it "
                "again with its original idempotency key",
                idempotency_key=job.key,
            )
        else:
            error = RunStoppedError(
                "the run was stopped before this message was sent; nothing was sent. "
                "Resume the run (with the same journal) to send it",
                idempotency_key=job.key,
            )
        return SendResult(index=job.index, message=job.message, error=error,
                          idempotency_key=job.key)  # fmt: skip

    def _deliver(self, result: SendResult, *, record: bool = True) -> None:
        summary = self.summary
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
        if record and self._journal is not None:
            self._records.append(_record_row(result))
        del self._pending[result.index]
        summary.results += 1
        if not self._ordered:
            self._results.put_nowait(result)
            return
        self._reorder[result.index] = result
        while self._next_index in self._reorder:
            self._results.put_nowait(self._reorder.pop(self._next_index))
            self._next_index += 1

    async def _flush_records(self) -> None:
        if self._journal is not None and self._records:
            rows, self._records = self._records, []
            await self._journal.record(rows)

    async def _record_periodically(self) -> None:
        while True:
            await asyncio.sleep(_RECORD_INTERVAL_S)
            await self._flush_records()

    # --- stopping -------------------------------------------------------------------

    def _begin_stop(self) -> None:
        if self._state == "running" and self._halting is None:
            self._halting = asyncio.ensure_future(self._halt())

    async def _halt(self) -> None:
        """Stop every task; give each message taken a result; then end the iteration.

        Workers waiting (for a turn, a backoff, a 429 pause, a connection, a job) are
        cancelled at once; those on the wire finish their request (no further
        attempt) within `DRAIN_TIMEOUT_S`, else are cancelled too.
        """
        self._stopping = True
        self.summary.finished_at = time.monotonic()
        self._supervisor.cancel()
        if self._producer is not None:
            self._producer.cancel()
        self._room.set()
        self._jobs_queued.set()
        self._queue.clear()  # their messages are still pending: they get results below
        on_wire = []
        for worker, watch in zip(self._workers, self._watches, strict=True):
            if worker.done():
                continue
            if watch.on_wire:
                watch.stopping = True
                on_wire.append(worker)
            else:
                worker.cancel()
        if on_wire:
            _, late = await asyncio.wait(on_wire, timeout=DRAIN_TIMEOUT_S)
            for worker in late:
                worker.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, self._supervisor, return_exceptions=True)
        for job in list(self._pending.values()):
            self._deliver(self._stopped_result(job, may_have_been_sent=False))
        await self._flush_records()
        self._results.put_nowait(_END)

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
            if self._journal is not None:
                await self._journal.close()


def _payload(message: OutgoingMessage) -> bytes:
    from_ = check_number("from_", message.from_)
    to = check_number("to", message.to)
    body = check_body(message.body)
    if message.idempotency_key is not None:
        check_idempotency_key(message.idempotency_key)
    return encode_send_request(from_, to, body)


def _record_row(result: SendResult) -> RecordRow:
    if result.sent is not None:
        return sent_message_row(result.index, result.sent, result.message.body)
    error = result.error
    assert error is not None
    outcome: Outcome
    if error.may_have_been_sent:
        outcome = "unknown"
    else:
        outcome = "unsent" if isinstance(error, RunStoppedError) else "failed"
    return outcome_row(result.index, outcome, type(error).__name__, error.code, str(error))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen, so that asyncio does not log it as lost."""
    if not future.cancelled():
        future.exception()


async def _aiter(messages: Iterable[MessageLike] | AsyncIterable[MessageLike]) -> Any:
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message
