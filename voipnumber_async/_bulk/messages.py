"""The values of a bulk run: `OutgoingMessage` in, `SendResult` and `BulkSummary` out.

Also the results every stage makes for a message it does not send.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, Union

import attrs

from .._errors import InvalidRequestError, OutcomeUnknownError, RunStoppedError, VoipNumberError
from .._models import SentMessage
from .._wire.requests import new_idempotency_key

__all__ = [
    "BulkSummary",
    "MessageLike",
    "OutgoingMessage",
    "SendResult",
    "default_key",
    "stopped_result",
    "unknown_from_earlier_run",
]


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


def default_key(message: OutgoingMessage) -> str:
    """The key `message` is sent with when no journal chose one: its own, or a fresh uuid4."""
    return message.idempotency_key or new_idempotency_key()


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


def stopped_result(
    index: int, message: OutgoingMessage, key: str | None, *, may_have_been_sent: bool
) -> SendResult:
    """The result of a message a stop reached: not sent, or unknown if it was on the wire."""
    if may_have_been_sent:
        error: VoipNumberError = OutcomeUnknownError(
            "the run was stopped while this message's request was on the wire: it may "
            "have been sent. Review it, or resume with resend_unknown=True to send it "
            "again with its original idempotency key",
            idempotency_key=key,
        )
    else:
        error = RunStoppedError(
            "the run was stopped before this message was sent; nothing was sent. "
            "Resume the run (with the same journal) to send it",
            idempotency_key=key,
        )
    return SendResult(index=index, message=message, error=error, idempotency_key=key)


def unknown_from_earlier_run(index: int, message: OutgoingMessage, key: str) -> SendResult:
    """The result of a message an earlier run may have sent (its journal says unknown)."""
    error = OutcomeUnknownError(
        "an earlier run stopped before this message's outcome was known: it may "
        "have been sent. Review it, or resume with resend_unknown=True to send it "
        "again with its original idempotency key",
        idempotency_key=key,
    )
    return SendResult(index=index, message=message, error=error, idempotency_key=key, resumed=True)


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
