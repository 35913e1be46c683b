"""The commands of `voipnumber`: send, bulk, sandbox, listen, segments.

`send` uses the blocking client: a command line has no event loop of its own to share.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, Final

import click
from aiohttp import web
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from voipnumber_sync import VoipNumber

from .._bulk import DEFAULT_CONCURRENCY, BulkSummary, SendResult
from .._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InvalidRequestError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    VoipNumberError,
)
from .._models import InboundMessage
from .._segments import estimate_segments
from .._version import __version__
from .._wire import WEBHOOK_HOST, converter
from ..sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, DEMO_NUMBER, INBOUND_TRIGGER_PATH, Sandbox
from ..webhooks import DEFAULT_WEBHOOK_PATH, create_app

#: The exit status for each error class; the most specific class wins.
EXIT_STATUS: Mapping[type[VoipNumberError], int] = {
    InvalidRequestError: 3,
    AuthenticationError: 4,
    NumberNotFoundError: 5,
    NumberOwnershipError: 6,
    MessageInvalidError: 7,
    RateLimitError: 8,
    ServiceUnavailableError: 9,
    APIError: 10,
    APIConnectionError: 11,
    OutcomeUnknownError: 12,
    UnexpectedResponseError: 13,
}
EXIT_OTHER_ERROR = 1

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def exit_status(error: VoipNumberError) -> int:
    """The exit status for `error`: that of its nearest class in `EXIT_STATUS`."""
    for cls in type(error).__mro__:
        if cls in EXIT_STATUS:
            return EXIT_STATUS[cls]
    return EXIT_OTHER_ERROR


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def _credential_options(command: Callable[..., None]) -> Callable[..., None]:
    """The options that say which account to use (the environment otherwise)."""
    for option in reversed((
        click.option("--account-id", help="Default: $VOIPNUMBER_ACCOUNT_ID."),
        click.option("--api-token", help="Default: $VOIPNUMBER_API_TOKEN."),
        click.option("--base-url", help="Default: $VOIPNUMBER_BASE_URL, else the service."),
        click.option(
            "--sandbox", "use_sandbox", is_flag=True,
            help=f"Use an embedded sandbox and its demo account (sending from {DEMO_NUMBER}).",
        ),
    )):  # fmt: skip
        command = option(command)
    return command


def _open_client(
    stack: contextlib.ExitStack,
    use_sandbox: bool,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    **options: Any,
) -> VoipNumber:
    """A client of the embedded sandbox's demo account, or of the given credentials.

    Both live until `stack` closes.
    """
    settings: dict[str, Any] = {
        "account_id": account_id, "api_token": api_token, "base_url": base_url,
    }  # fmt: skip
    if use_sandbox:
        settings = {**stack.enter_context(Sandbox().serve_in_thread()).client_settings()}
    return stack.enter_context(VoipNumber(**settings, **options))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voipnumber")
@click.option("-v", "--verbose", count=True, help="-v: log retries; -vv: log every attempt.")
def cli(verbose: int) -> None:
    """Send SMS with VoIP Number, or run a local sandbox of the service.

    Credentials come from --account-id/--api-token or from VOIPNUMBER_ACCOUNT_ID and
    VOIPNUMBER_API_TOKEN (prefer the environment: a flag is visible to other users of
    the machine). --sandbox needs none.
    """
    _configure_logging(verbose)


@cli.command()
@click.argument("from_number", metavar="FROM")
@click.argument("to_number", metavar="TO")
@click.argument("body")
@_credential_options
@click.option("--idempotency-key", help="Reuse the key of an earlier attempt to retry it safely.")
@click.option("--max-retries", type=click.IntRange(min=0), default=2, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds per attempt.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the sent message as one JSON line.")
def send(
    from_number: str,
    to_number: str,
    body: str,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    use_sandbox: bool,
    idempotency_key: str | None,
    max_retries: int,
    timeout: float,
    as_json: bool,
) -> None:
    """Send the SMS BODY from FROM to TO (E.164 numbers, such as +447483866525)."""
    try:
        with contextlib.ExitStack() as stack:
            client = _open_client(
                stack,
                use_sandbox,
                account_id,
                api_token,
                base_url,
                timeout=timeout,
                max_retries=max_retries,
            )
            message = client.sms.send(from_number, to_number, body, idempotency_key=idempotency_key)
            where = f"the sandbox at {client.base_url}" if use_sandbox else client.base_url
    except VoipNumberError as error:
        _print_error(error, _SEND_ARGUMENTS)
        sys.exit(exit_status(error))
    if as_json:
        click.echo(json.dumps(converter.unstructure(message)))
        return
    segments = estimate_segments(message.body)
    table = Table(title=f"Sent to {where}", show_header=False, title_justify="left")
    for name, value in (
        ("id", message.id),
        ("status", message.status),
        ("from", from_number),
        ("to", to_number),
        ("body", message.body),
        ("created", message.created.isoformat()),
        ("segments", f"{segments.segments} ({segments.encoding})"),
    ):
        table.add_row(name, value)
    stdout.print(table)


#: The `send` command's names for the client's parameters, for its error messages.
_SEND_ARGUMENTS: Final = {
    "from_": "FROM",
    "to": "TO",
    "body": "BODY",
    "idempotency_key": "--idempotency-key",
}


def _print_error(error: VoipNumberError, arguments: Mapping[str, str] | None = None) -> None:
    text = str(error)
    field = error.field if isinstance(error, InvalidRequestError) else None
    if arguments and field is not None and field in arguments and text.startswith(f"{field} "):
        # Say what was wrong with the name the user typed, not the Python parameter's.
        text = arguments[field] + text[len(field) :]
    stderr.print(f"[bold red]{type(error).__name__}[/]: {text}", highlight=False)
    details = {
        "code": error.code,
        "http status": error.http_status,
        "attempts": error.attempts or None,
        "may have been sent": "yes" if error.may_have_been_sent else None,
        "idempotency key": error.idempotency_key if error.may_have_been_sent else None,
    }
    for name, value in details.items():
        if value is not None:
            stderr.print(f"  {name}: {value}", highlight=False)
    if error.may_have_been_sent and error.idempotency_key:
        stderr.print(
            f"  to retry without a duplicate: --idempotency-key {error.idempotency_key}",
            highlight=False,
        )


class _OneSecretPerVariable(click.types.StringParamType):
    """A `--secret`, repeatable; its environment variable holds one, spaces and all.

    (Click splits a repeatable option's variable at whitespace: a secret with a space
    would become two shorter secrets, each accepted.)
    """

    name = "secret"

    def split_envvar_value(self, rv: str) -> list[str]:
        """The variable's value, whole."""
        return [rv]


def _parse_webhooks(values: tuple[str, ...]) -> dict[str, str]:
    webhooks = {}
    for value in values:
        number, separator, url = value.partition("=")
        if not separator or not number or not url.startswith(("http://", "https://")):
            raise click.BadParameter(
                f"expected NUMBER=URL, such as +447476553275=http://127.0.0.1:8080{DEFAULT_WEBHOOK_PATH}",
                param_hint="--webhook",
            )
        webhooks[number] = url
    return webhooks


def _serve_until_interrupted(
    serve: Callable[[], Coroutine[Any, Any, None]], what: str, where: str
) -> None:
    """Run `serve` until Ctrl-C; say so, and fail clearly if the port is taken."""

    async def forever() -> None:
        await serve()
        await asyncio.Event().wait()

    try:
        asyncio.run(forever())
    except KeyboardInterrupt:
        stderr.print(f"{what} stopped.")
    except OSError as error:
        stderr.print(f"[bold red]cannot serve on {where}[/]: {error}")
        sys.exit(EXIT_OTHER_ERROR)


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8025, show_default=True)
@click.option(
    "--envelope",
    type=click.Choice(["single", "nested"]),
    default="single",
    show_default=True,
    help="The success envelope to answer with.",
)
@click.option(
    "--webhook",
    "webhooks",
    multiple=True,
    metavar="NUMBER=URL",
    help="Deliver inbound messages for NUMBER to URL (repeatable); trigger them with "
    f"POST {INBOUND_TRIGGER_PATH}.",
)
def sandbox_command(host: str, port: int, envelope: str, webhooks: tuple[str, ...]) -> None:
    """Run the sandbox service until Ctrl-C, for clients in other processes."""
    logging.getLogger("voipnumber.sandbox").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        _configure_logging(1)
    sandbox = Sandbox(
        envelope="nested" if envelope == "nested" else "single",
        webhooks=_parse_webhooks(webhooks),
    )

    async def serve() -> None:
        await sandbox.start(host, port)
        stderr.print(
            f"Sandbox serving at {sandbox.base_url} (Ctrl-C to stop). Point a client at it:"
        )
        stdout.print(
            f"export VOIPNUMBER_BASE_URL={sandbox.base_url}\n"
            f"export VOIPNUMBER_ACCOUNT_ID={DEMO_ACCOUNT_ID}\n"
            f"export VOIPNUMBER_API_TOKEN={DEMO_API_TOKEN}",
            highlight=False,
        )
        for number in sandbox.webhooks:
            stderr.print(
                f"Inbound messages to {number}: curl -X POST {sandbox.base_url}"
                f"{INBOUND_TRIGGER_PATH} -H 'Content-Type: application/json' "
                f"""-d '{{"to": "{number}", "body": "Hello"}}'""",
                highlight=False,
            )

    _serve_until_interrupted(serve, "Sandbox", f"{host}:{port}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--path",
    default=DEFAULT_WEBHOOK_PATH,
    show_default=True,
    help="May hold the secret as a segment: /webhooks/voipnumber/{secret}.",
)
@click.option(
    "--secret",
    "secrets",
    type=_OneSecretPerVariable(),
    multiple=True,
    envvar="VOIPNUMBER_WEBHOOK_SECRET",
    help="The secret the webhook URL must carry (default $VOIPNUMBER_WEBHOOK_SECRET); "
    "repeat it to accept the old and the new one while rotating.",
)
@click.option(
    "--host-check/--no-host-check",
    default=True,
    show_default=True,
    help=f"Refuse deliveries whose Host is not {WEBHOOK_HOST}.",
)
def listen(host: str, port: int, path: str, secrets: tuple[str, ...], host_check: bool) -> None:
    """Receive inbound SMS/MMS; print each as one JSON line on stdout (logs on stderr)."""
    if not all(secrets):
        raise click.BadParameter(
            "must not be empty: an empty secret would accept every delivery", param_hint="--secret"
        )
    if not logging.getLogger().handlers:
        _configure_logging(1)

    async def print_message(message: InboundMessage) -> None:
        sys.stdout.write(json.dumps(converter.unstructure(message)) + "\n")
        sys.stdout.flush()

    app = create_app(
        print_message,
        path=path,
        secret=secrets or None,
        expected_host=WEBHOOK_HOST if host_check else None,
    )

    async def serve() -> None:
        # No access log: it would write each request's URL, and the URL holds the secret.
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]
        stderr.print(
            f"Listening on http://{host}:{bound}{path}"
            + (" (secret required)" if secrets else " (no secret: anyone may post)"),
            highlight=False,
        )

    _serve_until_interrupted(serve, "Listener", f"{host}:{port}")


_RESULT_COLUMNS = (
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


def _csv_rows(path: str, default_from: str | None) -> Iterator[tuple[str, str, str]]:
    """`(from_, to, body)` of each row of a CSV with `to`, `body` and maybe `from`."""
    with open(path, newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = {name.strip().lower() for name in reader.fieldnames or ()}
        if not {"to", "body"} <= columns:
            raise click.UsageError(
                f"{path} needs a header row with the columns to,body (and optionally from); "
                f"it has {sorted(columns) or 'none'}"
            )
        if "from" not in columns and default_from is None:
            raise click.UsageError(f"{path} has no from column: pass --from NUMBER")
        for row in reader:
            fields = {(k or "").strip().lower(): (v or "") for k, v in row.items()}
            yield (fields.get("from") or default_from or "", fields["to"].strip(), fields["body"])


def _count_rows(path: str) -> int:
    with open(path, newline="", encoding="utf-8-sig") as file:
        return max(0, sum(1 for _ in csv.reader(file)) - 1)


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
        "error": str(error) if error else "",
        "idempotency_key": result.idempotency_key or "",
        "resumed": "yes" if result.resumed else "",
    }


@cli.command()
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
    help="Write one CSV row per input message with its outcome.",
)
@_credential_options
def bulk(
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
    message was sent, 12 when any outcome is unknown, 1 when any failed. After a crash
    or Ctrl-C, the same command with the same --journal sends only what was not sent.
    """
    if use_sandbox and from_number is None:
        from_number = DEMO_NUMBER
    total = _count_rows(file)
    rows = _csv_rows(file, from_number)
    with contextlib.ExitStack() as stack:
        try:
            client = _open_client(stack, use_sandbox, account_id, api_token, base_url)
        except VoipNumberError as error:
            _print_error(error)
            sys.exit(exit_status(error))
        writer = None
        if results:
            output = stack.enter_context(open(results, "w", newline="", encoding="utf-8"))
            writer = csv.DictWriter(output, fieldnames=_RESULT_COLUMNS)
            writer.writeheader()
        run = stack.enter_context(
            client.sms.send_many(
                rows,
                concurrency=concurrency,
                rate_limit=rate,
                journal=journal,
                ordered=True,
                resend_unknown=resend_unknown,
            )
        )
        progress = _BulkProgress(total, live=stderr.is_terminal)
        stack.enter_context(progress)
        try:
            for result in run:
                if writer is not None:
                    writer.writerow(_result_row(result))
                progress.update(run.summary)
        except KeyboardInterrupt:
            progress.stop()
            stderr.print(
                "Interrupted: no new message was sent. "
                + (
                    "Run the same command to resume."
                    if journal
                    else "Use --journal next time to be able to resume."
                ),
                highlight=False,
            )
            raise SystemExit(130) from None
        except VoipNumberError as error:  # a journal that does not match the file, say
            progress.stop()
            _print_error(error)
            sys.exit(exit_status(error))
        progress.update(run.summary, final=True)
    summary = run.summary
    _print_summary(summary)
    if summary.unknown:
        sys.exit(EXIT_BULK_UNKNOWN)
    if summary.failed_total:
        sys.exit(EXIT_BULK_FAILED)


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
        if self._live:
            self._bar.stop()

    def update(self, summary: BulkSummary, *, final: bool = False) -> None:
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


def _print_summary(summary: BulkSummary) -> None:
    table = Table(title="Summary", show_header=False, title_justify="left")
    table.add_row("messages", f"{summary.results:,}")
    table.add_row("sent", f"{summary.sent:,}")
    if summary.already_sent:
        table.add_row("sent by an earlier run", f"{summary.already_sent:,}")
    for name, count in sorted(summary.failed.items()):
        table.add_row(f"failed: {name}", f"{count:,}")
    table.add_row("outcome unknown", f"{summary.unknown:,}")
    table.add_row("retries", f"{summary.retried:,}")
    if summary.rate_limited:
        table.add_row("paused for 429", f"{summary.rate_limited:,}")
    table.add_row("elapsed", f"{summary.elapsed_s:,.1f} s")
    table.add_row("rate", f"{summary.rate:,.1f} msg/s")
    stdout.print(table)


@cli.command()
@click.argument("body")
def segments(body: str) -> None:
    """Estimate how many SMS segments BODY is sent as, and in which encoding."""
    estimate = estimate_segments(body)
    click.echo(
        f"{estimate.segments} segment(s), {estimate.encoding}, "
        f"{estimate.units} units ({estimate.units_per_segment} per segment)"
    )
