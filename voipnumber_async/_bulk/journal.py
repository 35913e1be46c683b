"""Seam 2, the journal: what makes a bulk run resumable, as a protocol any store can implement.

`SqliteJournal` (a file, one process) is the one implementation here; a journal shared
by many processes (Redis, say) implements the same two methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import attrs

from .._errors import ConfigurationError
from .._models import SentMessage
from .messages import OutgoingMessage, SendResult

__all__ = ["Journal", "JournalEntry", "JournalMismatchError"]


class JournalMismatchError(ConfigurationError):
    """The journal was written for another input: a position holds a different message.

    Resuming would mix two campaigns, so nothing is sent. Use a new journal file for a
    new input, or the same input (in the same order) to resume.
    """


@attrs.frozen(kw_only=True)
class JournalEntry:
    """What a journal answers for one position it was asked to reserve.

    Attributes:
        position: The message's index in the input.
        idempotency_key: The key the message is (or was) sent with.
        outcome: `reserved`: committed by this reservation, send it now. `sent`: an
            earlier run sent it (`sent` says as what); it is not sent again.
            `unknown`: an earlier run may have sent it (its outcome was never
            recorded, or was unknown); it is reported for review, not sent.
        sent: The message as the service queued it, for `sent`; else `None`.
    """

    position: int
    idempotency_key: str
    outcome: Literal["reserved", "sent", "unknown"]
    sent: SentMessage | None = None


@runtime_checkable
class Journal(Protocol):
    """Where a bulk run commits each message's key before sending it, and its outcome after.

    `send_many(journal=...)` takes a path (a `SqliteJournal` file, opened and closed by
    the run) or any object with these two methods (used, not closed, by the run). The
    run calls them from its event loop: `reserve` one call at a time in input order,
    `record` one call at a time; a `reserve` and a `record` may overlap. Its rules:

    - **Committed before sent.** The run sends no message before `reserve` returned
      it `reserved`: what `reserve` returns must already be durable.
    - **One input per journal.** A position the journal holds with a different message
      raises `JournalMismatchError` from `reserve`, before anything of that batch is
      reserved, so nothing of another input is sent.
    - **One key per position.** A message's key is its own `idempotency_key` if it has
      one; otherwise the journal chooses it (random, or derived from the campaign,
      position and content), and gives the same one back for that position ever after.
    """

    async def reserve(
        self, start: int, messages: Sequence[OutgoingMessage], *, resend_unknown: bool = False
    ) -> Sequence[JournalEntry]:
        """Reserve the positions `start`, `start + 1`, ... for `messages`: one entry each, in order.

        A position new to the journal, or whose earlier outcome was certainly not sent
        (failed, or stopped before sending), is committed as reserved, with its key.
        A position an earlier run sent is answered `sent`; one whose outcome is unknown
        (including one reserved and never recorded: a crash, or another process still
        sending it) is answered `unknown`, unless `resend_unknown`, which reserves it
        again with its original key.

        Raises:
            JournalMismatchError: A position holds a different message.
        """
        ...

    async def record(self, results: Sequence[SendResult]) -> None:
        """Commit the outcomes of reserved messages (`result.outcome` says which).

        A `not_sent` result (the run stopped before sending it) makes its position as
        if never reserved: the next `reserve` reserves it again with the same key.

        The run never drops a batch: if a call is cancelled (a stop) or raises, the
        same results come again in the next call, so recording one twice must leave
        the same state. An error raised here ends the run: nothing more is sent
        unjournaled.
        """
        ...
