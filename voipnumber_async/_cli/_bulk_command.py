"""`voipnumber bulk`: one SMS per row of a CSV file, with a journal and a results file.

Nothing is opened for writing before the input is known to be usable: `--from`, the
paths (distinct, in writable directories) and the whole CSV file (`CsvInput.check`)
are checked first, each problem a usage error (exit 2).

SIGINT (Ctrl-C) and SIGTERM (systemd, `docker stop`, Kubernetes) stop a run the same
way: `run.stop()`, so that no new request starts; requests on the wire may finish;
every other message is reported `not_sent` (and journaled as unsent, so a resume sends
it). A second signal aborts at once. `--results` gets one row per input message, each
written (and flushed) as soon as it is decided.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from types import FrameType
from typing import IO, Final

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from voipnumber_sync import SendMany

from .._bulk import DEFAULT_CONCURRENCY, DRAIN_TIMEOUT_S, BulkSummary, OutgoingMessage, SendResult
from .._errors import InvalidRequestError, RunStoppedError, VoipNumberError
from .._validation import check_number
from ..sandbox import DEMO_NUMBER
from ._common import (
    EXIT_USAGE,
    credential_options,
    exit_status,
    open_client,
    print_error,
    shell_text,
    stderr,
    stdout,
)
from ._csv_input import CsvInput, Messages

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
#: Exit statuses of `bulk` beyond 0 (everything sent).
EXIT_BULK_FAILED = 1
EXIT_BULK_UNKNOWN = 12
#: A run stopped by a signal exits 128 + its number, as the shell reports a command it
#: killed: 130 for SIGINT, 143 for SIGTERM.
EXIT_SIGNALLED_BASE = 128
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

#: The SDK's names for a message's fields, as the CSV's columns call them.
_COLUMN_NAMES: Final = {"from_": "from", "to": "to", "body": "body"}
#: Why two of the command's paths must differ, by (the later option, the earlier one).
_CLASHES: Final[Mapping[tuple[str, str], str]] = {
    ("--results", "FILE"): (
        "writing the results would destroy the input; give --results another path"
    ),
    ("--journal", "FILE"): "the journal would overwrite the input; give --journal another path",
    ("--journal", "--results"): (
        "writing the results would wipe the journal, and the next run would send every "
        "message again with new keys; give them different paths"
    ),
}
#: The files SQLite keeps beside a journal (it runs in WAL mode).
_JOURNAL_SIDECARS: Final = ("", "-wal", "-shm")
#: The message of a row the run never reached (the library reports those it took).
_NOT_REACHED: Final = (
    "the run stopped before reaching this row: it was not sent by this run; a resume "
    "with the same --journal sends it (unless an earlier run did)"
)


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "from_number", help="The sender for rows without a from column.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Requests in flight at most.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Messages per second at most (default: no limit but the service's).",
)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False),
    help="A SQLite file recording every outcome: run again with it to resume.",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="On resuming, send again (with their original keys) the messages whose "
    "outcome is unknown.",
)
@click.option(
    "--results",
    type=click.Path(dir_okay=False),
    help="Write one CSV row per input message with its outcome, each as soon as it is known.",
)
@credential_options
def bulk(  # noqa: PLR0917 - click passes every option as an argument
    file: str,
    from_number: str | None,
    concurrency: int,
    rate: float | None,
    journal: str | None,
    resend_unknown: bool,
    results: str | None,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    use_sandbox: bool,
) -> None:
    """Send one SMS per row of FILE, a CSV with the columns to,body and optionally from.

    Shows progress (done, rate, ETA, failures), then a summary. Exits 0 when every
    message was sent, 12 when any outcome is unknown, 1 when any failed, 2 when the
    input cannot be used (nothing is sent, no file is written).

    Ctrl-C or SIGTERM stops the run: no new request starts, those on the wire may
    finish, the rest are reported not_sent; it exits 130 (SIGINT) or 143 (SIGTERM).
    A second signal aborts at once. The same command with the same --journal then
    sends exactly what was not sent.
    """
    if use_sandbox and from_number is None:
        from_number = DEMO_NUMBER
    _check_sender(from_number)
    _check_paths(file, results=results, journal=journal)
    source = CsvInput.check(file, from_number)
    stopper = _Stopper()
    with contextlib.ExitStack() as stack:
        try:
            client = open_client(stack, use_sandbox, account_id, api_token, base_url)
        except VoipNumberError as error:
            print_error(error)
            sys.exit(exit_status(error))
        output = stack.enter_context(_Results(results))
        messages = source.messages()
        stack.callback(messages.close)
        run = stack.enter_context(
            client.sms.send_many(
                messages,
                concurrency=concurrency,
                rate_limit=rate,
                journal=journal,
                ordered=True,
                resend_unknown=resend_unknown,
            )
        )
        progress = stack.enter_context(_BulkProgress(source.total, live=stderr.is_terminal))
        stack.enter_context(stopper.installed(run))
        try:
            reached = _collect(run, messages, output, progress, stopper)
        except VoipNumberError as error:  # a journal that does not match the file, say
            progress.stop()
            print_error(error, _COLUMN_NAMES)
            sys.exit(exit_status(error))
        stopper.finished = True
        # The rows the run never reached: their rows too, so that --results has one
        # per input message.
        not_reached = _write_not_reached(source, reached, output)
        output.create()
        progress.update(run.summary, final=True)
        progress.stop()
    summary = run.summary
    if stopper.signum is not None:
        _print_stopped(stopper, summary, not_reached, journal=journal, results=results)
    _print_summary(summary, not_reached)
    problem = messages.error or output.error
    if problem is not None:
        problem.show()
        sys.exit(EXIT_USAGE)
    if stopper.signum is not None:
        sys.exit(EXIT_SIGNALLED_BASE + stopper.signum)
    if summary.unknown:
        sys.exit(EXIT_BULK_UNKNOWN)
    if summary.failed_total or not_reached:
        sys.exit(EXIT_BULK_FAILED)


# --- checks before anything is written ----------------------------------------------------


def _check_sender(from_number: str | None) -> None:
    """Refuse a `--from` that is not E.164 once, rather than failing every row for it."""
    if from_number is None:
        return
    try:
        check_number("from_", from_number)
    except InvalidRequestError as error:
        raise click.UsageError(shell_text(error, {"from_": "--from"})) from None


def _check_paths(file: str, *, results: str | None, journal: str | None) -> None:
    """Refuse paths that are the same file, or that cannot be written.

    Raises:
        click.UsageError: Saying which paths clash, or which directory is missing or
            not writable.
    """
    given = [
        (name, path)
        for name, path in (("FILE", file), ("--results", results), ("--journal", journal))
        if path is not None
    ]
    for (first, path), (second, other) in itertools.combinations(given, 2):
        # Writing over one of SQLite's own files beside the journal corrupts it too.
        suffixes = _JOURNAL_SIDECARS if second == "--journal" else ("",)
        others = [other + suffix for suffix in suffixes]
        if any(_same_file(path, candidate) for candidate in others):
            raise click.UsageError(
                f"{second} {other} is the same file as {first}: {_CLASHES[second, first]}"
            )
    if results is not None:
        _check_writable("--results", results)
    if journal is not None:
        _check_writable("--journal", journal, directory_too=True)


def _same_file(first: str, second: str) -> bool:
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:  # hard links, and names that differ only in case on such file systems
        return os.path.samefile(first, second)
    except OSError:  # one does not exist yet
        return False


def _check_writable(option: str, path: str, *, directory_too: bool = False) -> None:
    """Refuse `path` unless it can be written (and created, if it does not exist).

    `directory_too`: the directory must be writable even if the file exists (SQLite
    creates its -wal and -shm files beside it).
    """
    target = os.path.abspath(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise click.UsageError(
            f"{option} {path}: the directory {directory} does not exist; create it first, "
            "or choose a path in an existing directory"
        )
    exists = os.path.exists(target)
    if exists and not os.access(target, os.W_OK):
        raise click.UsageError(
            f"{option} {path} is not writable: change its permissions, or choose another path"
        )
    if (directory_too or not exists) and not os.access(directory, os.W_OK | os.X_OK):
        raise click.UsageError(
            f"{option} {path} cannot be written: the directory {directory} is not writable; "
            "choose a path in a directory you can write to"
        )


# --- the run ----------------------------------------------------------------------------


class _Stopper:
    """Turns the first SIGINT or SIGTERM into `run.stop()`; a second one quits at once.

    The handlers run in the main thread, between two of its bytecodes or while it waits
    for a result: `stop()` is safe there, and so is quitting with `os._exit`, which
    leaves the results file as written so far: rows are flushed whole, one `write` each.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.finished = False
        self.stopped = False
        #: Results the library had decided when the signal came, and the unknown ones.
        self.results_at_stop = self.unknown_at_stop = 0
        self._run: SendMany | None = None

    @contextlib.contextmanager
    def installed(self, run: SendMany) -> Iterator[None]:
        """Handle SIGINT and SIGTERM for `run` until the block ends."""
        self._run = run
        previous = {number: signal.signal(number, self._handle) for number in STOP_SIGNALS}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def stop(self) -> None:
        """Stop the run: nothing new is sent; iteration goes on to its end."""
        if not self.stopped and self._run is not None:
            self.stopped = True
            self._run.stop()

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if self.finished:  # every result is in: nothing left to stop, it exits in a moment
            return
        name = signal.Signals(signum).name
        if self.signum is not None:
            _say(
                f"Aborted by a second {name}: the rows written to --results stand; with "
                "--journal, a resume reports as unknown the messages whose outcome the "
                "journal had not yet recorded.\n"
            )
            # At once, as asked: not waiting for the requests on the wire, nor for threads.
            os._exit(EXIT_SIGNALLED_BASE + signum)
        self.signum = signum
        if self._run is not None:
            summary = self._run.summary
            self.results_at_stop, self.unknown_at_stop = summary.results, summary.unknown
        self.stop()
        _say(
            f"\nStopping ({name}): no new request starts; those on the wire may finish (at "
            f"most {DRAIN_TIMEOUT_S:g} s). Send it again to quit at once.\n"
        )


def _say(text: str) -> None:
    """Write to stderr from a signal handler: a raw write, safe even amid a print."""
    os.write(sys.stderr.fileno(), text.encode())


def _collect(
    run: SendMany,
    messages: Messages,
    output: _Results,
    progress: _BulkProgress,
    stopper: _Stopper,
) -> int:
    """Write each result as it comes; the index of the first row the run did not reach.

    A problem with the input (the file changed under the run) or with `--results`
    stops the run as a signal would; the caller reports it once every result is in.
    """
    reached = 0
    for result in run:
        reached = result.index + 1
        output.write(result)
        progress.update(run.summary)
        if messages.error is not None or output.error is not None:
            stopper.stop()
    return reached


def _write_not_reached(source: CsvInput, start: int, output: _Results) -> int:
    """Write a `not_sent` row for each input row from `start` on; how many there are."""
    if start >= source.total:
        return 0
    if not output.writing:
        return source.total - start
    rows = source.messages(start)
    try:
        for index, (from_, to, body) in enumerate(rows, start):
            message = OutgoingMessage(from_=from_, to=to, body=body)
            error = RunStoppedError(_NOT_REACHED)
            output.write(SendResult(index=index, message=message, error=error))
    finally:
        rows.close()
    return source.total - start


class _Results:
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

    def __enter__(self) -> _Results:
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
        "error": shell_text(error, _COLUMN_NAMES) if error else "",
        "idempotency_key": result.idempotency_key or "",
        "resumed": "yes" if result.resumed else "",
    }


# --- what it prints -----------------------------------------------------------------------


class _BulkProgress:
    """A rich progress bar on a terminal; a plain line every second when piped."""

    def __init__(self, total: int, *, live: bool) -> None:
        self._total = total
        self._live = live
        self._last_line = 0.0
        self._bar = Progress(
            TextColumn("sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:,.0f}/s"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]} failed[/] {task.fields[unknown]} unknown"),
            console=stderr,
            transient=False,
        )
        self._task = self._bar.add_task("bulk", total=total, rate=0.0, failed=0, unknown=0)

    def __enter__(self) -> _BulkProgress:
        if self._live:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop redrawing the bar (before printing anything else)."""
        if self._live:
            self._bar.stop()

    def update(self, summary: BulkSummary, *, final: bool = False) -> None:
        """Show `summary`; piped, at most a line a second (and the final one)."""
        if self._live:
            self._bar.update(
                self._task,
                completed=summary.results,
                rate=summary.rate,
                failed=summary.failed_total,
                unknown=summary.unknown,
            )
            return
        now = time.monotonic()
        if final or now - self._last_line >= 1.0:
            self._last_line = now
            sys.stderr.write(
                f"{summary.results}/{self._total} sent={summary.sent + summary.already_sent} "
                f"failed={summary.failed_total} unknown={summary.unknown} "
                f"rate={summary.rate:.1f}/s\n"
            )
            sys.stderr.flush()


def _print_stopped(
    stopper: _Stopper,
    summary: BulkSummary,
    not_reached: int,
    *,
    journal: str | None,
    results: str | None,
) -> None:
    """Say what a signal's stop did: what was let finish, what was not sent, what next."""
    assert stopper.signum is not None
    not_sent = summary.not_sent + not_reached
    # Decided since the signal, and not by the stop itself: requests that were on the wire.
    finished = max(0, summary.results - stopper.results_at_stop - summary.not_sent)
    cut_off = summary.unknown - stopper.unknown_at_stop
    lines = [
        f"Stopped by {signal.Signals(stopper.signum).name}: no new request was made after "
        f"it; {finished:,} already on the wire were let finish"
        + (f" ({cut_off:,} of them with an unknown outcome)" if cut_off else "")
        + f", and {not_sent:,} messages were not sent."
    ]
    if journal is not None:
        lines.append(f"Run the same command to resume: it sends the {not_sent:,} not sent.")
        if summary.unknown:
            lines.append(
                f"{summary.unknown:,} have an unknown outcome: resume with --resend-unknown "
                "to send them again with their original keys (no duplicate if the service "
                "got them)."
            )
    elif results is not None:
        lines.append(
            f"Without --journal there is nothing to resume from: the not_sent rows of "
            f"{results} are what remains to send."
        )
    else:
        lines.append("Use --journal next time to be able to resume.")
    stderr.print("\n".join(lines), highlight=False)


def _print_summary(summary: BulkSummary, not_reached: int) -> None:
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_row("messages", f"{summary.results + not_reached:,}")
    table.add_row("sent", f"{summary.sent:,}")
    if summary.already_sent:
        table.add_row("sent by an earlier run", f"{summary.already_sent:,}")
    for name, count in sorted(summary.failed.items()):
        table.add_row(f"failed: {name}", f"{count:,}")
    table.add_row("outcome unknown", f"{summary.unknown:,}")
    if summary.not_sent or not_reached:
        table.add_row("not sent (stopped)", f"{summary.not_sent + not_reached:,}")
    table.add_row("retries", f"{summary.retried:,}")
    if summary.rate_limited:
        table.add_row("paused for 429", f"{summary.rate_limited:,}")
    table.add_row("elapsed", f"{summary.elapsed_s:,.1f} s")
    table.add_row("rate", f"{summary.rate:,.1f} msg/s")
    stdout.print(table)
