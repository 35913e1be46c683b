"""The journal of a bulk send: a SQLite file that makes a run resumable.

One row per input position: a hash of the message, its idempotency key, and its
outcome. The key is committed *before* the message is sent (in batches, ahead of the
workers), so a resumed run sends every message with the key its first attempt had;
outcomes are committed in batches behind the workers. After a crash, a row still
`pending` may have been sent or not: it is an unknown outcome, reported as such, and
sent again (with its original key) only when the caller opts in.

All SQLite work runs in one thread of its own, off the event loop. A batch is written
by a few statements of many rows each (`VALUES (...), (...), ...`) where SQLite can:
`executemany` hands the GIL to and from the event loop's thread at every row, which
costs the loop a third of its speed while a batch is written; a statement of 64 rows
hands it over once. (Rows as parameters, not a JSON array: encoding one took the GIL
for as long again, and SQLite parsing it back was a third of the journal's own time.)
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Awaitable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from typing import Any, Final, Literal, TypeVar

import attrs

from ._errors import ConfigurationError
from ._models import SentMessage
from ._wire.convert import converter
from ._wire.dates import format_service_datetime

__all__ = [
    "Journal",
    "JournalEntry",
    "Outcome",
    "RecordRow",
    "content_hash",
    "outcome_row",
    "sent_message_row",
    "sent_row",
]

Outcome = Literal["pending", "sent", "failed", "unknown", "unsent"]
"""`pending`: reserved (its key committed), result not yet recorded; `sent`; `failed`:
certainly not sent; `unknown`: may have been sent; `unsent`: reserved, then the run
stopped before sending it."""

T = TypeVar("T")

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


#: Rows per batch statement at most: SQLite before 3.32 binds at most 999 parameters.
_RESERVE_ROWS_PER_STATEMENT: Final = 128
_RECORD_ROWS_PER_STATEMENT: Final = 64


@functools.lru_cache(maxsize=16)
def _reserve_sql(rows: int) -> str:
    """Reserve `rows` rows: `(position, content_hash, idempotency_key, now)` each.

    Plain `?` placeholders: numbered ones given a sequence are deprecated since Python
    3.12 and an error from 3.14.
    """
    values = ", ".join(["(?, ?, ?, 'pending', ?)"] * rows)
    return _RESERVE_ROWS_SQL.format(values=values)


@functools.lru_cache(maxsize=16)
def _record_sql(rows: int) -> str:
    """Record `rows` outcomes: `now`, then the ten fields of each `RecordRow`."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return _RECORD_ROWS_SQL.format(values=values)


#: Templates whose `{values}` becomes placeholders only: no data is ever in the text.
_RESERVE_ROWS_SQL: Final = """
INSERT INTO messages (position, content_hash, idempotency_key, outcome, updated_at)
VALUES {values}
ON CONFLICT(position) DO UPDATE SET outcome = 'pending', updated_at = excluded.updated_at
"""
_RECORD_ROWS_SQL: Final = """
UPDATE messages SET outcome = v.column2, sent_id = v.column3, sent_status = v.column4,
    sent_timestamp_s = v.column5, sent_created = v.column6, sent_other = v.column7,
    error_class = v.column8, error_code = v.column9, error_message = v.column10,
    updated_at = ?
FROM (VALUES {values}) AS v
WHERE messages.position = v.column1
"""


def _chunks(rows: Sequence[T], most: int) -> Iterator[Sequence[T]]:
    """`rows` in runs of `most`, the rest in runs of powers of two.

    So that few distinct statements are ever prepared (and all stay cached).
    """
    start, size = 0, most
    while start < len(rows):
        while size > len(rows) - start:
            size //= 2
        yield rows[start : start + size]
        start += size


#: The same, a statement per row, for SQLite before 3.33.
_RESERVE_ROW_SQL: Final = """
INSERT INTO messages (position, content_hash, idempotency_key, outcome, updated_at)
VALUES (?, ?, ?, 'pending', ?)
ON CONFLICT(position) DO UPDATE SET outcome = 'pending', updated_at = excluded.updated_at
"""
_RECORD_ROW_SQL: Final = """
UPDATE messages SET outcome = ?, sent_id = ?, sent_status = ?, sent_timestamp_s = ?,
    sent_created = ?, sent_other = ?, error_class = ?, error_code = ?, error_message = ?,
    updated_at = ?
WHERE position = ?
"""

RecordRow = tuple[int, Outcome, Any, Any, Any, Any, str | None, str | None, str | None, str | None]
"""`(position, outcome, sent_id, sent_status, sent_timestamp_s, sent_created, sent_other,
error_class, error_code, error_message)`: see `sent_row` and `outcome_row`."""

#: The fields of a sent message with a column of their own; the rest go to `sent_other`.
#: (Columns, not one JSON text: SQLite stores them for half the work.)
_SENT_COLUMNS: Final = ("id", "status", "timestamp_s", "created")


def sent_row(position: int, sent: dict[str, Any], body: str) -> RecordRow:
    """The row of a message sent: `sent` unstructured, `body` the one it was sent with.

    The body comes back in the answer; it is stored only if it differs from the one
    sent (which the input holds), and `JournalEntry.sent` leaves it out then.
    """
    other = {key: value for key, value in sent.items() if key not in _SENT_COLUMNS}
    if other.get("body") == body:
        del other["body"]
    timestamp_s = sent.get("timestamp_s")
    if type(timestamp_s) is not int or not _INT64_MIN <= timestamp_s <= _INT64_MAX:
        # Not an INTEGER to SQLite (JSON would make it a REAL): kept exactly as JSON.
        other["timestamp_s"], timestamp_s = timestamp_s, None
    return (
        position, "sent", _storable(sent.get("id")), _storable(sent.get("status")),
        timestamp_s, _storable(sent.get("created")), json.dumps(other) if other else None,
        None, None, None,
    )  # fmt: skip


def sent_message_row(position: int, sent: SentMessage, body: str) -> RecordRow:
    """`sent_row` of `sent`, unstructured: made directly for the usual message.

    The usual one, every field known and the body the one sent, needs none of the
    converter's work, and the journal writes one of these per message.
    """
    timestamp_s = sent.timestamp_s
    if (
        sent.extra
        or sent.body != body
        or type(timestamp_s) is not int
        or not _INT64_MIN <= timestamp_s <= _INT64_MAX
    ):
        return sent_row(position, converter.unstructure(sent), body)
    return (
        position, "sent", _storable(sent.id), _storable(sent.status), timestamp_s,
        format_service_datetime(sent.created), None, None, None, None,
    )  # fmt: skip


def outcome_row(
    position: int,
    outcome: Outcome,
    error_class: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> RecordRow:
    """The row of a message not sent (or whose outcome is unknown)."""
    return (
        position, outcome, None, None, None, None, None,
        _storable(error_class), _storable(error_code), _storable(error_message),
    )  # fmt: skip


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


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


def content_hash(from_: str, to: str, body: str, idempotency_key: str | None) -> str:
    """What identifies a message at a position (hex): a change means a different input."""
    text = "\x1f".join((from_, to, body, idempotency_key or ""))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def writes_batches(db: sqlite3.Connection) -> bool:
    """Whether `db` runs the many-row statements: `UPDATE ... FROM` came in SQLite 3.33."""
    del db  # one library for every connection; the argument says which one is meant
    return sqlite3.sqlite_version_info >= (3, 33)


@attrs.frozen
class JournalEntry:
    """What the journal knows of one position."""

    position: int
    content_hash: str
    idempotency_key: str
    outcome: Outcome
    #: The message as the service answered, unstructured; without `body` when it was
    #: the input's (see `sent_row`).
    sent: dict[str, Any] | None
    error_class: str | None
    error_message: str | None


class Journal:
    """A SQLite journal, opened for one run. Use `await Journal.open(path)`."""

    def __init__(self, path: str | os.PathLike[str], *, batched: bool | None = None) -> None:
        self.path = os.fspath(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voipnumber-journal")
        self._db: sqlite3.Connection | None = None
        #: One statement per batch (None: when SQLite can), or a statement per row.
        self.batched = batched
        #: The last position an earlier run wrote, when opened; None if none did. No
        #: position after it has an entry to look up (this run writes only its own).
        self.last_position: int | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, batched: bool | None = None) -> Journal:
        """Open (or create) the journal at `path`."""
        journal = cls(path, batched=batched)
        try:
            await journal._run(journal._open)
        except BaseException:
            journal._executor.shutdown(wait=False)
            raise
        return journal

    def _submit(self, function: Any, *args: Any) -> asyncio.Future[Any]:
        # Submitted now, in call order, to the journal's one thread; shielded, because
        # cancelling a caller must not drop a write that was not yet carried out.
        work = asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        return asyncio.shield(work)

    async def _run(self, function: Any, *args: Any) -> Any:
        return await self._submit(function, *args)

    def _open(self) -> None:
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
        if self.batched is None:
            self.batched = writes_batches(db)
        (self.last_position,) = db.execute("SELECT max(position) FROM messages").fetchone()

    async def entries(self, first: int, last: int) -> dict[int, JournalEntry]:
        """The rows of positions `first` to `last`, inclusive."""
        return await self._run(self._entries, first, last)  # type: ignore[no-any-return]

    def _entries(self, first: int, last: int) -> dict[int, JournalEntry]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT position, content_hash, idempotency_key, outcome, sent_id, sent_status,"
            " sent_timestamp_s, sent_created, sent_other, error_class, error_message"
            " FROM messages WHERE position BETWEEN ? AND ?",
            (first, last),
        )
        return {row[0]: _entry(*row) for row in rows}

    def reserve(self, rows: Sequence[tuple[int, str, str]]) -> Awaitable[None]:
        """Commit `(position, content_hash, idempotency_key)` as pending, before sending.

        The write is queued at the call, behind every earlier one, and carried out even
        if nothing awaits it; it is committed when what this returns is done.
        """
        if not rows:
            done = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return self._submit(self._reserve, rows)

    def _reserve(self, rows: Sequence[tuple[int, str, str]]) -> None:
        now = time.time()
        with self._transaction() as db:
            if not self.batched:
                db.executemany(_RESERVE_ROW_SQL, [(*row, now) for row in rows])
                return
            for chunk in _chunks(rows, _RESERVE_ROWS_PER_STATEMENT):
                db.execute(
                    _reserve_sql(len(chunk)), list(chain.from_iterable((*r, now) for r in chunk))
                )

    async def record(self, rows: Sequence[RecordRow]) -> None:
        """Commit outcomes, each made by `sent_row` or `outcome_row`."""
        if rows:
            await self._run(self._record, rows)

    def _record(self, rows: Sequence[RecordRow]) -> None:
        now = time.time()
        with self._transaction() as db:
            if not self.batched:
                db.executemany(_RECORD_ROW_SQL, [(*row[1:], now, row[0]) for row in rows])
                return
            for chunk in _chunks(rows, _RECORD_ROWS_PER_STATEMENT):
                db.execute(_record_sql(len(chunk)), [now, *chain.from_iterable(chunk)])

    def _transaction(self) -> _Transaction:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        return _Transaction(self._db)

    async def counts(self) -> dict[str, int]:
        """How many positions have each outcome."""
        return await self._run(self._counts)  # type: ignore[no-any-return]

    def _counts(self) -> dict[str, int]:
        assert self._db is not None
        return dict(self._db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))

    async def close(self) -> None:
        """Close the file. Safe to call twice."""
        if self._db is not None:
            await self._run(self._close)
        self._executor.shutdown(wait=False)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


def _entry(
    position: int,
    digest: str,
    key: str,
    outcome: Outcome,
    *sent_and_error: Any,
) -> JournalEntry:
    *columns, other, error_class, error_message = sent_and_error
    sent = None
    if outcome == "sent":
        sent = dict(zip(_SENT_COLUMNS, columns, strict=True))
        if other:
            sent.update(json.loads(other))
    return JournalEntry(position, digest, key, outcome, sent, error_class, error_message)


class _Transaction:
    """`with` block around an already-begun transaction: commit, or roll back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        return self._db

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
