"""`voipnumber campaign ...`: start, watch, export and resend a campaign run by Celery workers.

The commands only enqueue and read: `voipnumber worker` processes (anywhere that
reaches the same Redis) send. Celery and redis-py are imported when a command runs, so
the rest of the CLI works without the `celery` extra.
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import click

from ..._config import DEFAULT_REDIS_URL, ENV_BROKER_URL, ENV_REDIS_URL
from ..._errors import VoipNumberError
from .._csv_input import CsvInput
from .._output import EXIT_USAGE, exit_status, print_error, stderr, stdout
from .._paths import check_writable
from .campaign_demo import demo

if TYPE_CHECKING:
    from ...redis import CampaignStatus

__all__ = ["EXIT_CAMPAIGN_FAILED", "EXIT_CAMPAIGN_UNKNOWN", "campaign", "redis_option"]

#: Exit statuses of `campaign status --follow` once it is done (as `bulk`'s).
EXIT_CAMPAIGN_FAILED = 1
EXIT_CAMPAIGN_UNKNOWN = 12
#: Seconds between two looks at a followed campaign.
FOLLOW_INTERVAL_S: Final = 0.5
#: The columns of `campaign results`.
RESULT_COLUMNS: Final = (
    "position", "outcome", "idempotency_key", "message_id", "error_class", "error_code",
)  # fmt: skip


def redis_option(command: Any) -> Any:
    """`--redis URL`, default `$VOIPNUMBER_REDIS_URL`."""
    return click.option(
        "--redis",
        "redis_url",
        envvar=ENV_REDIS_URL,
        default=DEFAULT_REDIS_URL,
        show_default=True,
        show_envvar=True,
        help="The Redis of campaign journals and shared pacers.",
    )(command)


def _broker_option(command: Any) -> Any:
    return click.option(
        "--broker",
        envvar=ENV_BROKER_URL,
        show_envvar=True,
        help="The Celery broker the workers read (default: the Redis of --redis).",
    )(command)


@click.group()
def campaign() -> None:
    """Send one CSV file through many Celery workers, at one account rate shared in Redis.

    `campaign start` enqueues the file in chunks; `voipnumber worker` processes send
    them; `campaign status --follow` watches from anywhere. Needs the celery extra:
    pip install "voipnumber[celery,cli]".
    """


def _start_options(command: Any) -> Any:
    for option in reversed((
        click.option("--from", "from_number", help="The sender for rows without a from column."),
        click.option(
            "--rate", type=click.FloatRange(min=0, min_open=True), required=True,
            help="The account's rate in messages per second, shared by all workers.",
        ),
        click.option(
            "--chunk-size", type=click.IntRange(min=1), default=1000, show_default=True,
            help="Messages per task.",
        ),
        click.option(
            "--concurrency", type=click.IntRange(min=1), default=20, show_default=True,
            help="Requests in flight at most per chunk.",
        ),
        click.option(
            "--processes", type=click.IntRange(min=1),
            help="Worker processes you run: warns if a chunk could outlast the broker's "
            "visibility timeout at their share of --rate.",
        ),
        click.option("--queue", help="The Celery queue (default: the app's)."),
        click.option("--follow", is_flag=True, help="Then watch it (`campaign status --follow`)."),
    )):  # fmt: skip
        command = option(command)
    return _broker_option(redis_option(command))


campaign.add_command(demo)


@campaign.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="The campaign's name: its journal and its keys.")
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Send again, with their original keys, messages whose outcome is unknown.",
)
@_start_options
def start(file: str, name: str, resend_unknown: bool, **options: Any) -> None:
    """Enqueue FILE (a CSV with to,body and optionally from) as the campaign NAME.

    The same command again resumes it: chunks all sent are not enqueued again, and
    workers skip what was sent. A different file under the same name is refused.
    """
    _enqueue(file, name, resend_unknown=resend_unknown, only_unknown=False, **options)


@campaign.command("resend-unknown")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_start_options
def resend_unknown_command(name: str, file: str, **options: Any) -> None:
    """Send again the messages of NAME whose outcome is unknown, with their original keys.

    FILE is the campaign's own CSV (the journal keeps no message bodies). The service
    answers a key it has seen with its first answer instead of sending again (for at
    least 24 hours, as assumed), so only a message that never went out goes now.
    """
    _enqueue(file, name, resend_unknown=True, only_unknown=True, **options)


def _enqueue(
    file: str,
    name: str,
    *,
    resend_unknown: bool,
    only_unknown: bool,
    from_number: str | None,
    rate: float,
    chunk_size: int,
    concurrency: int,
    processes: int | None,
    queue: str | None,
    follow: bool,
    redis_url: str,
    broker: str | None,
) -> None:
    from ...celery import ChunkOptions, create_app, start_campaign  # noqa: PLC0415

    source = CsvInput.check(file, from_number)
    app = create_app(broker, redis=redis_url)
    messages = source.messages()
    try:
        options = ChunkOptions(rate=rate, concurrency=concurrency, resend_unknown=resend_unknown)
        started = asyncio.run(
            start_campaign(
                app, name, messages, chunk_size=chunk_size, options=options,
                only_unknown=only_unknown, queue=queue, expected_processes=processes,
            )
        )  # fmt: skip
    except VoipNumberError as error:
        print_error(error)
        sys.exit(exit_status(error))
    finally:
        messages.close()
    if messages.error is not None:
        messages.error.show()
        sys.exit(EXIT_USAGE)
    stderr.print(
        f"campaign {name}: {started.total:,} messages in {started.chunks:,} chunks; "
        f"{started.enqueued:,} enqueued, {started.skipped:,} already done"
    )
    if follow:
        _follow(name, redis_url)


@campaign.command()
@click.argument("name")
@click.option(
    "--follow", is_flag=True, help="Keep watching, with a progress bar, until it is done."
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@redis_option
def status(name: str, follow: bool, as_json: bool, redis_url: str) -> None:
    """Show what the campaign NAME has done: sent, failed by class, unknown, remaining, rate.

    With --follow, exits once it is done: 0 when every message was sent, 12 when any
    outcome is unknown, 1 when any failed.
    """
    if follow:
        _follow(name, redis_url)
        return
    current = _status(name, redis_url)
    if as_json:
        stdout.print_json(data=_status_dict(current))
    else:
        _print_status(current)


@campaign.command()
@click.argument("name")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False),
    help="The CSV file to write: one row per position.",
)  # fmt: skip
@redis_option
def results(name: str, output: str, redis_url: str) -> None:
    """Write the outcome of every message the campaign NAME has handled to a CSV file.

    One row per position a worker reached, in order: position (0 is the file's first
    row), outcome (sent, failed, unknown, reserved: in flight, not_sent), the
    idempotency key of a message not sent (a sent one's is derived again when
    needed), and for failures the error's class and code. Positions no worker reached
    yet have no row.
    """
    check_writable("--output", output)

    async def write(writer: Any) -> int:
        from ...redis import RedisJournal  # noqa: PLC0415

        journal = RedisJournal(redis_url, name)
        rows = 0
        try:
            async for record in journal.results():
                writer.writerow([_cell(getattr(record, column)) for column in RESULT_COLUMNS])
                rows += 1
        finally:
            await journal.aclose()
        return rows

    try:
        # A local file written a row at a time: its writes do not block the loop for long.
        with open(output, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(RESULT_COLUMNS)
            rows = asyncio.run(write(writer))
    except VoipNumberError as error:
        print_error(error)
        sys.exit(exit_status(error))
    stderr.print(f"wrote {rows:,} rows to {output}")


def _cell(value: object) -> object:
    return "" if value is None else value


def _status(name: str, redis_url: str) -> CampaignStatus:
    async def read() -> CampaignStatus:
        from ...redis import RedisJournal  # noqa: PLC0415

        journal = RedisJournal(redis_url, name)
        try:
            return await journal.status()
        finally:
            await journal.aclose()

    try:
        return asyncio.run(read())
    except VoipNumberError as error:
        print_error(error)
        sys.exit(exit_status(error))


def _statuses(name: str, redis_url: str) -> Iterator[CampaignStatus]:
    while True:
        current = _status(name, redis_url)
        yield current
        if current.done:
            return
        time.sleep(FOLLOW_INTERVAL_S)


def _follow(name: str, redis_url: str) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn  # noqa: PLC0415

    live = stderr.is_terminal
    bar = Progress(
        TextColumn(f"{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f}/s"),
        TextColumn(
            "[red]{task.fields[failed]} failed[/] {task.fields[unknown]} unknown "
            "{task.fields[in_flight]} in flight"
        ),
        console=stderr,
        disable=not live,
    )
    last_line = 0.0
    final: CampaignStatus | None = None
    with bar:
        task = bar.add_task(name, total=None, rate=0.0, failed=0, unknown=0, in_flight=0)
        for current in _statuses(name, redis_url):
            final = current
            settled = current.sent + current.failed + current.unknown
            bar.update(
                task, completed=settled, total=current.total, rate=current.rate_per_s,
                failed=current.failed, unknown=current.unknown, in_flight=current.reserved,
            )  # fmt: skip
            if not live and time.monotonic() - last_line >= 1.0:
                last_line = time.monotonic()
                stderr.print(_status_line(current))
    assert final is not None
    _print_status(final)
    if final.unknown:
        sys.exit(EXIT_CAMPAIGN_UNKNOWN)
    if final.failed:
        sys.exit(EXIT_CAMPAIGN_FAILED)


def _status_line(current: CampaignStatus) -> str:
    total = "?" if current.total is None else f"{current.total:,}"
    return (
        f"{current.campaign}: {current.sent:,} sent, {current.failed:,} failed, "
        f"{current.unknown:,} unknown, {current.reserved:,} in flight of {total}; "
        f"{current.rate_per_s:,.1f}/s"
    )


def _print_status(current: CampaignStatus) -> None:
    stdout.print(_status_line(current))
    for error_class, count in sorted(current.failed_by_class.items()):
        stdout.print(f"  failed {error_class}: {count:,}")
    if current.remaining is not None:
        stdout.print(
            f"  remaining: {current.remaining:,}" + ("" if not current.done else " (done)")
        )


def _status_dict(current: CampaignStatus) -> dict[str, Any]:
    return {
        "campaign": current.campaign,
        "total": current.total,
        "sent": current.sent,
        "failed": current.failed,
        "failed_by_class": dict(current.failed_by_class),
        "unknown": current.unknown,
        "in_flight": current.reserved,
        "remaining": current.remaining,
        "rate_per_s": current.rate_per_s,
        "done": current.done,
        "started_at": current.started_at,
        "updated_at": current.updated_at,
    }
