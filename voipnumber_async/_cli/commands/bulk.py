"""`voipnumber bulk`: one SMS per row of a CSV file, with a journal and a results file.

Nothing is opened for writing before the input is known to be usable: `--from`, the
paths (`_paths.check_paths`) and the whole CSV file (`CsvInput.check`) are checked
first, each problem a usage error (exit 2). Then the run: the file read lazily into
`send_many`, each result written to `--results` (`_results`) as it is decided, progress
shown (`_progress`), SIGINT/SIGTERM turned into a stop (`_stop`); and last, a summary
and the exit status.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Final

import click

from voipnumber_sync import SendMany, VoipNumber

from ..._bulk import DEFAULT_CONCURRENCY, BulkSummary, OutgoingMessage, SendResult
from ..._errors import InvalidRequestError, RunStoppedError, VoipNumberError
from ..._validation import check_number
from ...sandbox import DEMO_NUMBER
from .._credentials import credential_options, open_client
from .._csv_input import COLUMN_NAMES, CsvInput, Messages
from .._output import EXIT_USAGE, exit_status, print_error, shell_text, stderr
from .._paths import check_paths
from .._progress import BulkProgress, print_summary
from .._results import ResultsFile
from .._stop import EXIT_SIGNALLED_BASE, Stopper, print_stopped

__all__ = ["EXIT_BULK_FAILED", "EXIT_BULK_UNKNOWN", "bulk"]

#: Exit statuses of `bulk` beyond 0 (everything sent).
EXIT_BULK_FAILED = 1
EXIT_BULK_UNKNOWN = 12

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
    check_paths(file, results=results, journal=journal)
    source = CsvInput.check(file, from_number)
    stopper = Stopper()
    with contextlib.ExitStack() as stack:
        try:
            client = open_client(stack, use_sandbox, account_id, api_token, base_url)
        except VoipNumberError as error:
            print_error(error)
            sys.exit(exit_status(error))
        output = stack.enter_context(ResultsFile(results))
        messages = source.messages()
        stack.callback(messages.close)
        run = stack.enter_context(
            _send_many(client, messages, concurrency, rate, journal, resend_unknown)
        )
        not_reached = _run(stack, run, source, messages, output, stopper)
    summary = run.summary  # once the run is closed: every result is in
    if stopper.signum is not None:
        print_stopped(stopper, summary, not_reached, journal=journal, results=results)
    print_summary(summary, not_reached)
    problem = messages.error or output.error
    if problem is not None:
        problem.show()
        sys.exit(EXIT_USAGE)
    status = _exit_status(summary, not_reached, stopper)
    if status:
        sys.exit(status)


def _check_sender(from_number: str | None) -> None:
    """Refuse a `--from` that is not E.164 once, rather than failing every row for it."""
    if from_number is None:
        return
    try:
        check_number("from_", from_number)
    except InvalidRequestError as error:
        raise click.UsageError(shell_text(error, {"from_": "--from"})) from None


def _send_many(  # noqa: PLR0917 - the command's options, passed on
    client: VoipNumber,
    messages: Messages,
    concurrency: int,
    rate: float | None,
    journal: str | None,
    resend_unknown: bool,
) -> SendMany:
    """The run, in the order of the file (so that `--results` follows it)."""
    return client.sms.send_many(
        messages,
        concurrency=concurrency,
        rate_limit=rate,
        journal=journal,
        ordered=True,
        resend_unknown=resend_unknown,
    )


def _run(  # noqa: PLR0917 - the pieces of one run
    stack: contextlib.ExitStack,
    run: SendMany,
    source: CsvInput,
    messages: Messages,
    output: ResultsFile,
    stopper: Stopper,
) -> int:
    """Show and write every result, stopping on a signal; how many rows were not reached.

    The rows the run never reached get their rows too, so that `--results` has one per
    input message. Exits (with the error's status) when the run cannot go on, such as
    for a journal that does not match the file.
    """
    progress = stack.enter_context(BulkProgress(source.total, live=stderr.is_terminal))
    stack.enter_context(stopper.installed(run))
    try:
        reached = _collect(run, messages, output, progress, stopper)
    except VoipNumberError as error:
        progress.stop()
        print_error(error, COLUMN_NAMES)
        sys.exit(exit_status(error))
    stopper.finished = True
    not_reached = _write_not_reached(source, reached, output)
    output.create()
    progress.update(run.summary, final=True)
    progress.stop()
    return not_reached


def _collect(
    run: SendMany,
    messages: Messages,
    output: ResultsFile,
    progress: BulkProgress,
    stopper: Stopper,
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


def _write_not_reached(source: CsvInput, start: int, output: ResultsFile) -> int:
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


def _exit_status(summary: BulkSummary, not_reached: int, stopper: Stopper) -> int:
    """0 when every message was sent; else why not, the gravest reason first."""
    if stopper.signum is not None:
        return EXIT_SIGNALLED_BASE + stopper.signum
    if summary.unknown:
        return EXIT_BULK_UNKNOWN
    if summary.failed_total or not_reached:
        return EXIT_BULK_FAILED
    return 0
