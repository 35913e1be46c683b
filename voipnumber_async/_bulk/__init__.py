"""Bulk sending: `client.sms.send_many(...)`, a pipeline of stages, one module each.

```
            the window: a slot per message read, given back when its result is yielded
          ┌───────────────────────────────────────────────────────────────────────┐
 input ──▶ feed ──▶ reserve (journal, a batch) ──▶ jobs ──▶ workers ──▶ results ──▶ caller
                    committed before queued       queue     Sender.send    │
                                                                           ▼
                                                      record (journal, in batches)
```

- `messages`: the values (`OutgoingMessage`, `SendResult`, `BulkSummary`).
- `input`: the input read lazily, plain or async; each message coerced and validated.
- `feed`: one task reading the input under the window into the workers' queue.
- `journal`: the `Journal` protocol (seam 2); `sqlite`: `SqliteJournal`, its one
  implementation; `journaling`: the stage that reserves and records through it.
- `workers`: `concurrency` tasks sending through the client's `Sender`.
- `results`: the window, and the results on their way to the caller.
- `run`: `AsyncSendMany`, which wires them and stops them as one.

A stop (`stop()`, `aclose()`, a cancelled iteration) starts no further request: the
feed reads nothing more; a worker that waits is cancelled, and its message is not sent;
only a request on the wire (or a reservation being committed) may finish, within a
drain. Every message taken gets one result, and the journal records the unsent ones.
Nothing here imports the client: a run is given its `Sender`.
"""

from .journal import Journal, JournalEntry, JournalMismatchError
from .messages import BulkSummary, MessageLike, OutgoingMessage, SendResult
from .run import DEFAULT_CONCURRENCY, DRAIN_TIMEOUT_S, AsyncSendMany
from .sqlite import SqliteJournal

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DRAIN_TIMEOUT_S",
    "AsyncSendMany",
    "BulkSummary",
    "Journal",
    "JournalEntry",
    "JournalMismatchError",
    "MessageLike",
    "OutgoingMessage",
    "SendResult",
    "SqliteJournal",
]
