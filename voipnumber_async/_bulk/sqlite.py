"""`SqliteJournal`: the journal of a bulk run in a SQLite file, for one process.

One row per input position: a hash of the message, its idempotency key, and its
outcome (`pending` while reserved and not yet recorded). All SQLite work runs in one
thread of its own, off the event loop, each batch in one transaction of `executemany`
statements with plain `?` placeholders.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal, TypeVar

from .._errors import ConfigurationError
from .._models import SentMessage
from .._wire.convert import converter
from .journal import JournalEntry, JournalMismatchError
from .messages import OutgoingMessage, SendResult, default_key

__all__ = ["SqliteJournal", "content_hash", "sent_row"]

T = TypeVar("T")

#: What a row's `outcome` column holds. `pending`: reserved (its key committed), result
#: not yet recorded; `unsent`: reserved, then the run stopped before sending it.
Stored = Literal["pending", "sent", "failed", "unknown", "unsent"]

SCHEMA_VERSION: Final = 2
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    position INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    outcome TEXT NOT NULL,
    sent_id TEXT,
    sent_status TEXT,
    sent_timestamp_s INTEGER,
    sent_created TEXT,
    sent_other TEXT,
    error_class TEXT,
    error_code TEXT,
    error_message TEXT,
    updated_at REAL NOT NULL
);
"""
_SELECT_SQL: Final = """
SELECT position, content_hash, idempotency_key, outcome, sent_id, sent_status,
    sent_timestamp_s, sent_created, sent_other
FROM messages WHERE position BETWEEN ? AND ?
"""
_RESERVE_SQL: Final = """
INSERT INTO messages (position, content_hash, idempotency_key, outcome, updated_at)
VALUES (?, ?, ?, 'pending', ?)
ON CONFLICT(position) DO UPDATE SET outcome = 'pending', updated_at = excluded.updated_at
"""
_RECORD_SQL: Final = """
UPDATE messages SET outcome = ?, sent_id = ?, sent_status = ?, sent_timestamp_s = ?,
    sent_created = ?, sent_other = ?, error_class = ?, error_code = ?, error_message = ?,
    updated_at = ?
WHERE position = ?
"""

#: `(outcome, sent_id, sent_status, sent_timestamp_s, sent_created, sent_other,
#: error_class, error_code, error_message)`: the columns `record` writes.
RecordRow = tuple[Stored, Any, Any, Any, Any, str | None, str | None, str | None, str | None]

#: The fields of a sent message with a column of their own; the rest go to `sent_other`.
#: (Columns, not one JSON text: SQLite stores them for half the work.)
_SENT_COLUMNS: Final = ("id", "status", "timestamp_s", "created")
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
#: What a result's outcome is stored as.
_STORED: Final[dict[str, Stored]] = {
    "sent": "sent", "failed": "failed", "unknown": "unknown", "not_sent": "unsent",
}  # fmt: skip


class SqliteJournal:
    """A `Journal` in a SQLite file (WAL mode): a committed row survives the process being killed.

    ```py
    async with SqliteJournal("campaign.db") as journal:
        async for result in client.sms.send_many(messages, journal=journal): ...
    ```

    `send_many(journal="campaign.db")` does the same, opening and closing it for the
    run. The file is opened on first use (or by `await SqliteJournal.open(path)`).

    Raises:
        ConfigurationError: The file is not a journal, or one of another schema.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voipnumber-journal")
        self._db: sqlite3.Connection | None = None
        #: The last position written, once open; None if none was. No position after
        #: it has a row to look up: a run reserving beyond it reads nothing.
        self._last_position: int | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> SqliteJournal:
        """The journal at `path`, opened (or created) now, so that a bad file fails here."""
        journal = cls(path)
        try:
            await journal._run(journal._connection)
        except BaseException:
            journal._executor.shutdown(wait=False)
            raise
        return journal

    async def __aenter__(self) -> SqliteJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def reserve(
        self, start: int, messages: Sequence[OutgoingMessage], *, resend_unknown: bool = False
    ) -> list[JournalEntry]:
        """See `Journal.reserve`: one transaction that checks, then reserves, the batch."""
        hashes = [content_hash(m) for m in messages]
        return await self._run(self._reserve, start, messages, hashes, resend_unknown)

    async def record(self, results: Sequence[SendResult]) -> None:
        """See `Journal.record`: one transaction for the batch."""
        if results:
            now = time.time()
            rows = [(*_record_row(r), now, r.index) for r in results]
            await self._run(self._record, rows)

    async def aclose(self) -> None:
        """Close the file. Safe to call twice."""
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=False)

    def _run(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        # Submitted now, in call order, to the journal's one thread; shielded, because
        # cancelling a caller must not drop a write that was not yet carried out.
        work = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        return asyncio.shield(work)

    # --- in the journal's thread ----------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._prepare(db)
        except BaseException as error:
            if db is not None:
                db.close()
            if isinstance(error, sqlite3.DatabaseError):
                raise ConfigurationError(
                    f"cannot use {self.path!r} as a journal: {error}", field="journal"
                ) from None
            raise
        self._db = db
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        # Committed transactions survive the process being killed; only a power cut
        # could lose the last ones, as with any WAL database at NORMAL.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is None:
            db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(time.time()),))
        elif version[0] != str(SCHEMA_VERSION):
            raise ConfigurationError(
                f"{self.path!r} is a journal of another version of voipnumber (schema "
                f"{version[0]}, this one writes {SCHEMA_VERSION}); resume it with the "
                "version that wrote it, or start over with a new file",
                field="journal",
            )
        (self._last_position,) = db.execute("SELECT max(position) FROM messages").fetchone()

    def _reserve(
        self,
        start: int,
        messages: Sequence[OutgoingMessage],
        hashes: list[str],
        resend_unknown: bool,
    ) -> list[JournalEntry]:
        db = self._connection()
        last = start + len(messages) - 1
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = {}
            # Only an earlier run's positions have rows: a fresh journal is never read.
            if self._last_position is not None and start <= self._last_position:
                rows = {row[0]: row for row in db.execute(_SELECT_SQL, (start, last))}
            entries, reserve, now = [], [], time.time()
            for position, message, digest in zip(
                range(start, last + 1), messages, hashes, strict=True
            ):
                row = rows.get(position)
                entry = self._entry(position, message, digest, row, resend_unknown)
                if entry.outcome == "reserved":
                    reserve.append((position, digest, entry.idempotency_key, now))
                entries.append(entry)
            db.executemany(_RESERVE_SQL, reserve)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        if self._last_position is None or last > self._last_position:
            self._last_position = last  # a run that reserves them again reads them back
        return entries

    def _entry(
        self,
        position: int,
        message: OutgoingMessage,
        digest: str,
        row: tuple[Any, ...] | None,
        resend_unknown: bool,
    ) -> JournalEntry:
        """What to answer for `position`, given its row from an earlier run (if any)."""
        if row is None:
            return JournalEntry(position=position, idempotency_key=default_key(message),
                                outcome="reserved")  # fmt: skip
        _, stored_hash, key, outcome, *sent_columns = row
        if stored_hash != digest:
            raise JournalMismatchError(
                f"message {position} differs from the one journal {self.path!s} recorded "
                "at that position: this is another input (or another order). Use a new "
                "journal file for a new campaign.",
                field="journal",
            )
        if outcome == "sent":
            sent = _sent_message(message.body, *sent_columns)
            return JournalEntry(position=position, idempotency_key=key, outcome="sent", sent=sent)
        if outcome in ("pending", "unknown") and not resend_unknown:
            return JournalEntry(position=position, idempotency_key=key, outcome="unknown")
        return JournalEntry(position=position, idempotency_key=key, outcome="reserved")

    def _record(self, rows: list[tuple[Any, ...]]) -> None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_RECORD_SQL, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def content_hash(message: OutgoingMessage) -> str:
    """What identifies a message at a position (hex): a change means a different input."""
    fields = (message.from_, message.to, message.body, message.idempotency_key or "")
    # A message that fails its checks is journaled too (as failed): whatever its fields
    # hold, they hash. Text hashes as it always has, so older journals still resume.
    text = "\x1f".join(field if isinstance(field, str) else repr(field) for field in fields)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _record_row(result: SendResult) -> RecordRow:
    if result.sent is not None:
        return sent_row(converter.unstructure(result.sent), result.message.body)
    error = result.error
    assert error is not None
    return (
        _STORED[result.outcome], None, None, None, None, None,
        _storable(type(error).__name__), _storable(error.code), _storable(str(error)),
    )  # fmt: skip


def sent_row(sent: dict[str, Any], body: str) -> RecordRow:
    """The columns of a message sent: `sent` unstructured, `body` the one it was sent with.

    The body comes back in the answer; it is stored only if it differs from the one
    sent (which the input holds).
    """
    other = {key: value for key, value in sent.items() if key not in _SENT_COLUMNS}
    if other.get("body") == body:
        del other["body"]
    timestamp_s = sent.get("timestamp_s")
    if type(timestamp_s) is not int or not _INT64_MIN <= timestamp_s <= _INT64_MAX:
        # Not an INTEGER to SQLite (JSON would make it a REAL): kept exactly as JSON.
        other["timestamp_s"], timestamp_s = timestamp_s, None
    return (
        "sent", _storable(sent.get("id")), _storable(sent.get("status")), timestamp_s,
        _storable(sent.get("created")), json.dumps(other) if other else None, None, None, None,
    )  # fmt: skip


def _sent_message(body: str, *columns: Any) -> SentMessage:
    """The message a `sent` row holds, `body` the input's unless the row kept another."""
    *known, other = columns
    sent = {"body": body, **dict(zip(_SENT_COLUMNS, known, strict=True))}
    if other:
        sent.update(json.loads(other))
    return converter.structure(sent, SentMessage)


def _storable(value: Any) -> Any:
    """`value`, with a NUL and a lone surrogate escaped.

    SQLite cannot take a lone surrogate (it is not UTF-8), and journals of this schema
    were first written through SQLite's JSON functions, which end a text at a NUL:
    both are escaped, so that every journal of the schema holds the same text for the
    same value. (Text from the service or an exception may hold either.)
    """
    if not isinstance(value, str):
        return value
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    if not value.isascii():
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value
