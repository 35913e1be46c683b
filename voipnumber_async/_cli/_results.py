"""`bulk --results`: one CSV row per input message, each written as soon as it is decided."""

from __future__ import annotations

import contextlib
import csv
from typing import IO, Final

import click

from .._bulk import SendResult
from ._csv_input import COLUMN_NAMES
from ._output import shell_text

__all__ = ["RESULT_COLUMNS", "ResultsFile"]

RESULT_COLUMNS: Final = (
    "index",
    "outcome",
    "to",
    "from",
    "message_id",
    "status",
    "error_class",
    "error_code",
    "error",
    "idempotency_key",
    "resumed",
)


class ResultsFile:
    """`--results`: one CSV row per input message, each flushed as it is written.

    The file is created (or truncated) only when the first row is written, so a run
    that cannot start (a journal of another campaign, say) leaves an earlier one
    intact. A write that fails is kept in `error`, and later rows are not written.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.error: click.UsageError | None = None
        self._file: IO[str] | None = None
        self._writer: csv.DictWriter[str] | None = None

    @property
    def writing(self) -> bool:
        """Whether rows are written (a path was given, and no write failed)."""
        return self.path is not None and self.error is None

    def write(self, result: SendResult) -> None:
        """Write the row of `result`."""
        writer = self._writer or self.create()
        if writer is None:
            return
        try:
            writer.writerow(_result_row(result))
        except OSError as error:
            self.error = click.UsageError(f"cannot write --results {self.path}: {error}")

    def create(self) -> csv.DictWriter[str] | None:
        """Create the file with its header, if not yet done (an input of no rows)."""
        if not self.writing:
            return None
        if self._writer is None:
            assert self.path is not None
            try:
                # Line-buffered: each row reaches the file as it is written, so a crash
                # leaves every row decided until then.
                self._file = open(self.path, "w", newline="", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
                self._writer = csv.DictWriter(self._file, fieldnames=RESULT_COLUMNS)
                self._writer.writeheader()
            except OSError as error:
                self.error = click.UsageError(f"cannot write --results {self.path}: {error}")
                return None
        return self._writer

    def close(self) -> None:
        """Close the file (rows are already flushed)."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # already reported by write()
                file.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _result_row(result: SendResult) -> dict[str, object]:
    error = result.error
    return {
        "index": result.index,
        "outcome": result.outcome,
        "to": result.message.to,
        "from": result.message.from_,
        "message_id": result.sent.id if result.sent else "",
        "status": result.sent.status if result.sent else "",
        "error_class": type(error).__name__ if error else "",
        "error_code": (error.code or "") if error else "",
        "error": shell_text(error, COLUMN_NAMES) if error else "",
        "idempotency_key": result.idempotency_key or "",
        "resumed": "yes" if result.resumed else "",
    }
