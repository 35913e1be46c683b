"""The input of `voipnumber bulk`: a CSV file, checked whole before anything is sent.

`CsvInput.check` reads the file once, before the command opens any file for writing:
its encoding (UTF-8, with or without a byte-order mark), its header, and every record
(csv's limit of 131,072 characters a field, its quoting). Each problem is a
`click.UsageError` that names the file, the line and the fix. The run then reads the
file again, lazily, through `CsvInput.messages`.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Generator
from typing import Final

import attrs
import click

#: The columns a row may have (a header names them, in any order and case).
REQUIRED_COLUMNS: Final = ("to", "body")
OPTIONAL_COLUMNS: Final = ("from",)
#: The SDK's names for a message's fields, as the CSV's columns call them (for messages).
COLUMN_NAMES: Final = {"from_": "from", "to": "to", "body": "body"}
#: Bytes sniffed for a byte-order mark or NUL bytes: a CSV file of UTF-8 text has neither.
_SNIFF_BYTES: Final = 4096
_UTF16_UTF32_BOMS: Final = (
    (codecs.BOM_UTF32_LE, "UTF-32"),  # before UTF-16 LE, whose mark begins it
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_SAVE_AS_UTF8: Final = "save it as UTF-8 (in Excel: Save As, then 'CSV UTF-8 (Comma delimited)')"

Message = tuple[str, str, str]
"""`(from_, to, body)`: one row, as `send_many` takes it."""


class CsvInputError(click.UsageError):
    """The CSV file cannot be used as it is; the message says where and how to fix it."""


@attrs.frozen
class _Columns:
    """Where a row holds each column (`from_` is None when the file has no such column)."""

    to: int
    body: int
    from_: int | None

    @classmethod
    def of(cls, path: str, header: list[str]) -> _Columns:
        names = [name.strip().lower() for name in header]
        seen = [name for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in names]
        for name in seen:
            if names.count(name) > 1:
                raise CsvInputError(
                    f"{path}: the header has the column {name} {names.count(name)} times; keep one"
                )
        if not set(REQUIRED_COLUMNS) <= set(seen):
            raise CsvInputError(
                f"{path} needs a header row with the columns to,body (and optionally from); "
                f"its first row has {sorted(names)}: add the line `to,body` at the top, or "
                "rename the columns"
            )
        return cls(
            to=names.index("to"),
            body=names.index("body"),
            from_=names.index("from") if "from" in names else None,
        )


@attrs.frozen
class CsvInput:
    """A checked CSV file of messages: `total` rows after the header.

    Attributes:
        path: The file, as given.
        total: Its rows (records) after the header; blank lines are not rows.
        default_from: The sender of rows without one (`--from`).
    """

    path: str
    total: int
    default_from: str | None
    _columns: _Columns

    @classmethod
    def check(cls, path: str, default_from: str | None) -> CsvInput:
        """Read all of `path` and check it can be sent as it is.

        Raises:
            CsvInputError: It is not UTF-8, has no usable header, has no `from` column
                and `default_from` is None, or a record cannot be parsed.
        """
        _check_encoding(path)
        records = _records(path)
        try:
            _, header = next(records)
        except StopIteration:
            raise CsvInputError(
                f"{path} is empty: it needs a header row to,body (and optionally from), "
                "then one row per message"
            ) from None
        try:
            columns = _Columns.of(path, header)
            if columns.from_ is None and default_from is None:
                raise CsvInputError(
                    f"{path} has no from column: pass --from NUMBER, the sender of every row"
                )
            total = sum(1 for _ in records)
        finally:
            records.close()
        return cls(path, total, default_from, columns)

    def messages(self, start: int = 0) -> Messages:
        """The messages from row `start` (0 is the first after the header), read lazily."""
        return Messages(self, start)

    def message(self, row: list[str]) -> Message:
        """`(from_, to, body)` of a row; a field it lacks is empty."""
        columns = self._columns
        width = len(row)
        to = row[columns.to].strip() if columns.to < width else ""
        body = row[columns.body] if columns.body < width else ""
        from_ = ""
        if columns.from_ is not None and columns.from_ < width:
            from_ = row[columns.from_].strip()
        return (from_ or self.default_from or "", to, body)


class Messages:
    """An iterator of a checked file's messages, for `send_many`, from a given row.

    A problem met while reading (the file changed since it was checked) ends the
    iteration and is kept in `error`, with its line: the caller stops its run and
    reports it.
    """

    error: CsvInputError | None
    """Why the iteration ended early, if it did."""

    def __init__(self, source: CsvInput, start: int) -> None:
        self.error = None
        self._source = source
        self._records = _records(source.path)
        self._skip = start + 1  # and the header

    def __iter__(self) -> Messages:
        return self

    def __next__(self) -> Message:
        try:
            while self._skip:
                next(self._records)
                self._skip -= 1
            _, row = next(self._records)
        except CsvInputError as error:
            self.error = error
            raise StopIteration from None
        return self._source.message(row)

    def close(self) -> None:
        """Close the file."""
        self._records.close()


def _check_encoding(path: str) -> None:
    """Refuse a file that starts with a UTF-16/32 byte-order mark or holds NUL bytes."""
    with open(path, "rb") as file:
        start = file.read(_SNIFF_BYTES)
    for bom, encoding in _UTF16_UTF32_BOMS:
        if start.startswith(bom):
            raise CsvInputError(f"{path} is {encoding} text, not UTF-8: {_SAVE_AS_UTF8}")
    if b"\0" in start:
        line = start.count(b"\n", 0, start.index(b"\0")) + 1
        raise CsvInputError(
            f"{path}, line {line}, holds NUL bytes: "
            f"it is UTF-16 or UTF-32 text without a byte-order mark, or not text at all. "
            f"If it is text, {_SAVE_AS_UTF8}"
        )


def _records(path: str) -> Generator[tuple[int, list[str]], None, None]:
    """`(line, fields)` of each record of `path` that is not a blank line.

    Raises:
        CsvInputError: A byte that is not UTF-8, a field over csv's size limit, or
            another parsing error, with its line.
    """
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        line = 1
        try:
            for row in reader:
                if row:
                    yield line, row
                line = reader.line_num + 1
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise CsvInputError(
                    f"{path}, line {line}: a field is longer than "
                    f"{csv.field_size_limit():,} characters. A quote opened and never "
                    "closed makes the rest of the file one field: check the quotes from "
                    "that line on"
                ) from None
            raise CsvInputError(f"{path}, line {line}: {error}") from None


def _not_utf8(path: str) -> CsvInputError:
    """The error for a file that does not decode as UTF-8, naming the first bad byte."""
    with open(path, "rb") as file:
        # A newline byte is never part of a UTF-8 sequence: decoding line by line finds
        # the very line an editor shows.
        where = "somewhere"  # unless the file changed since the decoder failed
        for number, line in enumerate(file, 1):
            error = _decode_error(line)
            if error is not None:
                where = f"line {number}, column {error.start + 1}, byte 0x{line[error.start]:02x}"
                break
    name = os.path.basename(path)
    return CsvInputError(
        f"{path} is not UTF-8 ({where}): it is in another encoding, such as Latin-1 or "
        f"Windows-1252 (as older Excel saves CSV). To fix it, {_SAVE_AS_UTF8}, or convert "
        f"it: iconv -f WINDOWS-1252 -t UTF-8 {path} > utf8-{name}"
    )


def _decode_error(line: bytes) -> UnicodeDecodeError | None:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as error:
        return error
    return None
