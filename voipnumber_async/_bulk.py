"""Bulk sending: `client.sms.send_many(...)`, a bounded pipeline with a journal.

```
input ──producer──▶ queue (concurrency) ──▶ workers (concurrency) ──▶ results ──▶ caller
           │  window: messages taken but not yet yielded (bounds memory)  ▲
           └─ journal: keys committed before sending ─ outcomes after ─────┘
```

The input is read lazily, one message at a time, and never more than `window` ahead
of what the caller has consumed, so memory does not grow with the input. Every
attempt (retries included) takes a slot from one `RateLimiter`, which a 429 pauses
for all workers at once.

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
from typing import TYPE_CHECKING, Any, Final, Literal, Union

import attrs

from ._errors import (
    ConfigurationError,
    InvalidRequestError,
    OutcomeUnknownError,
    RateLimitError,
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
from ._rate import RateLimiter
from ._validation import check_body, check_idempotency_key, check_number
from ._wire import converter, encode_send_request, new_idempotency_key

if TYPE_CHECKING:
    from ._client import AsyncVoipNumber

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
        error: Why not; `may_have_been_sent` tells a failure from an unknown outcome.
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
    def outcome(self) -> Literal["sent", "failed", "unknown"]:
        """`sent`, `failed` (certainly not sent) or `unknown` (may have been sent)."""
        if self.sent is not None:
            return "sent"
        return "unknown" if self.error is not None and self.error.may_have_been_sent else "failed"


@attrs.define(kw_only=True)
class BulkSummary:
    """The running totals of a `send_many` run.

    Attributes:
        results: Results yielded so far (one per input message, in the end).
        sent: Messages sent by this run.
        already_sent: Messages the journal showed sent by an earlier run.
        failed: Messages certainly not sent, by error class name.
        unknown: Messages that may have been sent (outcome unknown).
        attempts: Requests made, retries included.
        rate_limited: Times a 429 paused every worker.
        elapsed_s: Seconds since the run started.
    """

    results: int = 0
    sent: int = 0
    already_sent: int = 0
    failed: Counter[str] = attrs.field(factory=Counter)
    unknown: int = 0
    attempts: int = 0
    rate_limited: int = 0
    started_at: float = attrs.field(factory=time.monotonic, repr=False)
    finished_at: float | None = attrs.field(default=None, repr=False)

    @property
    def failed_total(self) -> int:
        """Messages certainly not sent, of any class."""
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
        return self.failed_total == 0 and self.unknown == 0


@attrs.frozen
class _Job:
    index: int
    message: OutgoingMessage
    key: str
    payload: bytes


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
    running totals.
    """

    summary: BulkSummary
    """The totals so far; final once the iteration ended."""

    def __init__(
        self,
        client: AsyncVoipNumber,
        messages: Iterable[MessageLike] | AsyncIterable[MessageLike],
        *,
        concurrency: int,
        rate_limit: float | None,
        journal: str | os.PathLike[str] | None,
        ordered: bool,
        resend_unknown: bool,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be a whole number >= 1, got {concurrency!r}", field="concurrency"
            )
        try:
            self._limiter = RateLimiter(rate_limit)
        except ValueError as error:
            raise ConfigurationError(str(error), field="rate_limit") from None
        if not isinstance(messages, (Iterable, AsyncIterable)):
            raise ConfigurationError(
                f"messages must be an iterable or async iterable, got {type(messages).__name__}",
                field="messages",
            )
        self._client = client
        self._messages = messages
        self._concurrency = concurrency
        self._journal_path = journal
        self._ordered = ordered
        self._resend_unknown = resend_unknown
        self.summary = BulkSummary()
        self._state: Literal["new", "running", "closed"] = "new"
        self._journal: Journal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        # Reserved in the journal and not yet answered: what a stop must account for.
        self._outstanding: set[int] = set()
        self._records: list[RecordRow] = []

    # --- iteration ------------------------------------------------------------------

    def __aiter__(self) -> AsyncSendMany:
        return self

    async def __anext__(self) -> SendResult:
        """The next result; `StopAsyncIteration` once every message has one."""
        if self._state == "new":
            await self._start()
        elif self._state == "closed":
            raise StopAsyncIteration
        results = self._results
        try:
            item = results.get_nowait() if results.qsize() else await results.get()
        except asyncio.CancelledError:
            await self._stop()
            raise
        if isinstance(item, SendResult):
            self._yielded += 1
            if self._room_wanted is not None:
                self._make_room()
            return item
        await self._stop()
        if isinstance(item, _Failure):
            raise item.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the run early, leaving the journal consistent. Safe to call twice.

        No new message is taken; requests in flight may finish for a few seconds, then
        are cancelled and recorded as outcome unknown; messages queued but not sent are
        recorded as never sent, so a resumed run sends them.
        """
        await self._stop()

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
        self._hooks = _Hooks(self._limiter, self.summary)
        self._producer: asyncio.Future[None] | None = None
        if messages is None:
            self._producer = asyncio.ensure_future(self._produce())
        self._workers = [
            asyncio.ensure_future(self._work(messages)) for _ in range(self._concurrency)
        ]
        self._tasks = [*self._workers]
        if self._producer is not None:
            self._tasks.append(self._producer)
        if self._journal is not None:
            self._tasks.append(asyncio.ensure_future(self._record_periodically()))
        self._tasks.append(asyncio.ensure_future(self._supervise()))

    async def _supervise(self) -> None:
        try:
            if self._producer is not None:
                await self._producer
            await asyncio.gather(*self._workers)
            await self._flush_records()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self._results.put_nowait(_Failure(error))
            return
        self._results.put_nowait(_END)

    async def _work(self, messages: Iterator[MessageLike] | None) -> None:
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
                await self._send_job(job)
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
        return self._job(index, message, message.idempotency_key or new_idempotency_key())

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
        index = 0
        batch: list[tuple[int, OutgoingMessage]] = []
        # Batches whose reservation is being committed, their jobs waiting for it: the
        # journal's thread writes these while the workers take from the queue, so the
        # queue does not run dry for the length of a commit.
        reserving: deque[tuple[Awaitable[None], list[_Job]]] = deque()
        try:
            async for value in _aiter(self._messages):
                if self._taken - self._yielded >= self._window:
                    await self._wait_for_room("window")
                self._taken += 1
                batch.append((index, OutgoingMessage.coerce(value)))
                index += 1
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
            # Stopped with reservations still being committed: their jobs are recorded
            # as unsent by the stop; a write that failed is not news to anyone now.
            for reservation, _ in reserving:
                if isinstance(reservation, asyncio.Future):
                    reservation.add_done_callback(_retrieve)

    async def _queue_jobs(self, reservation: Awaitable[None], jobs: list[_Job]) -> None:
        await reservation  # committed before anything is sent
        await self._wait_for_room("queue")
        self._queue.extend(jobs)
        self._jobs_queued.set()

    def _job(self, index: int, message: OutgoingMessage, key: str) -> _Job | None:
        """The job that sends `message`; None if it is invalid (its result is delivered)."""
        try:
            payload = _payload(message)
        except InvalidRequestError as error:
            self._deliver(
                SendResult(index=index, message=message, error=error, idempotency_key=key)
            )
            return None
        return _Job(index, message, key, payload)

    async def _reserve(
        self, journal: Journal, batch: list[tuple[int, OutgoingMessage]]
    ) -> tuple[Awaitable[None], list[_Job]]:
        """Validate, consult and reserve in the journal: the jobs, once it is committed."""
        entries = {}
        # Only an earlier run's positions have entries: a fresh journal is never read.
        if journal.last_position is not None and batch[0][0] <= journal.last_position:
            entries = await journal.entries(batch[0][0], batch[-1][0])
        reserve: list[tuple[int, str, str]] = []
        jobs: list[_Job] = []
        for index, message in batch:
            entry = entries.get(index)
            digest = content_hash(message.from_, message.to, message.body, message.idempotency_key)
            if entry is not None and entry.content_hash != digest:
                raise JournalMismatchError(
                    f"message {index} differs from the one journal {self._journal_path!s} "
                    "recorded at that position: this is another input (or another order). "
                    "Use a new journal file for a new campaign.",
                    field="journal",
                )
            key = (
                entry.idempotency_key if entry else message.idempotency_key or new_idempotency_key()
            )
            if entry is not None and self._from_journal(index, message, entry):
                continue
            reserve.append((index, digest, key))  # an invalid one too: its failure is recorded
            job = self._job(index, message, key)
            if job is not None:
                jobs.append(job)
        # Outstanding from the moment the reservation is submitted: a stop before these
        # are queued must still record them (the write itself completes) as unsent.
        self._outstanding.update(job.index for job in jobs)
        return journal.reserve(reserve), jobs

    def _from_journal(self, index: int, message: OutgoingMessage, entry: JournalEntry) -> bool:
        """Yield what an earlier run decided for `index`; `False` if it must be sent."""
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

    async def _send_job(self, job: _Job) -> None:
        try:
            sent = await self._client._send(job.payload, job.key, self._hooks)
        except VoipNumberError as error:
            result = SendResult(index=job.index, message=job.message, error=error,
                                idempotency_key=job.key)  # fmt: skip
        except asyncio.CancelledError:
            self._record_unknown(job, "the run stopped while this message was being sent")
            raise
        else:
            result = SendResult(index=job.index, message=job.message, sent=sent,
                                idempotency_key=job.key)  # fmt: skip
        self._deliver(result)
        if len(self._records) >= _RECORD_BATCH:
            await self._flush_records()

    def _deliver(self, result: SendResult, *, record: bool = True) -> None:
        summary = self.summary
        if result.sent is not None:
            if result.resumed:
                summary.already_sent += 1
            else:
                summary.sent += 1
        elif result.error is not None and result.error.may_have_been_sent:
            summary.unknown += 1
        elif result.error is not None:
            summary.failed[type(result.error).__name__] += 1
        if record and self._journal is not None:
            self._records.append(_record_row(result))
        self._outstanding.discard(result.index)
        summary.results += 1
        if not self._ordered:
            self._results.put_nowait(result)
            return
        self._reorder[result.index] = result
        while self._next_index in self._reorder:
            self._results.put_nowait(self._reorder.pop(self._next_index))
            self._next_index += 1

    def _record_unknown(self, job: _Job, why: str) -> None:
        self._outstanding.discard(job.index)
        if self._journal is not None:
            self._records.append(
                outcome_row(job.index, "unknown", OutcomeUnknownError.__name__, None, why)
            )

    async def _flush_records(self) -> None:
        if self._journal is not None and self._records:
            rows, self._records = self._records, []
            await self._journal.record(rows)

    async def _record_periodically(self) -> None:
        while True:
            await asyncio.sleep(_RECORD_INTERVAL_S)
            await self._flush_records()

    async def _stop(self) -> None:
        if self._state != "running":
            self._state = "closed"
            return
        self._state = "closed"
        self.summary.finished_at = time.monotonic()
        # No worker takes another job (each stops after the one in flight); one asleep
        # for room or for jobs wakes to see that. Queued jobs are never sent: with a
        # journal they are still outstanding, recorded as unsent below.
        self._stopping = True
        self._room.set()
        self._jobs_queued.set()
        if self._producer is not None:
            self._producer.cancel()
        self._queue.clear()
        running = [w for w in self._workers if not w.done()]
        if running:
            _, late = await asyncio.wait(running, timeout=DRAIN_TIMEOUT_S)
            for worker in late:
                worker.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._journal is not None:
            # Reserved but never handed to a worker, or queued and dropped: not sent.
            self._records += [outcome_row(i, "unsent") for i in self._outstanding]
            await self._flush_records()
            await self._journal.close()


class _Hooks:
    """What the client tells a bulk run about each attempt: its rate slot, its 429s."""

    __slots__ = ("_limiter", "_summary")

    def __init__(self, limiter: RateLimiter, summary: BulkSummary) -> None:
        self._limiter = limiter
        self._summary = summary

    def before_attempt(self) -> Awaitable[None] | None:
        self._summary.attempts += 1
        return self._limiter.take_slot()

    def after_error(self, error: VoipNumberError) -> None:
        if isinstance(error, RateLimitError):
            pauses = self._limiter.pauses
            self._limiter.rate_limited(error.retry_after)
            self._summary.rate_limited += self._limiter.pauses - pauses


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
    outcome: Outcome = "unknown" if error.may_have_been_sent else "failed"
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
