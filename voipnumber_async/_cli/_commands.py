"""The commands of `voipnumber`: send, bulk, sandbox, listen, segments.

`send` uses the blocking client: a command line has no event loop of its own to share.
`bulk` lives in `_bulk_command`, what every command shares in `_common`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Final

import click
from aiohttp import web
from rich.table import Table

from .._errors import InvalidRequestError, VoipNumberError
from .._models import InboundMessage
from .._segments import estimate_segments
from .._validation import check_body
from .._version import __version__
from .._wire.convert import converter
from .._wire.inbound import WEBHOOK_HOST
from ..sandbox import (
    DEMO_ACCOUNT_ID,
    DEMO_API_TOKEN,
    FAULT_KINDS,
    INBOUND_TRIGGER_PATH,
    Fault,
    Sandbox,
)
from ..webhooks import DEFAULT_WEBHOOK_PATH, create_app
from ._bulk_command import EXIT_BULK_FAILED, EXIT_BULK_UNKNOWN, bulk
from ._common import (
    EXIT_OTHER_ERROR,
    EXIT_STATUS,
    EXIT_USAGE,
    VERBOSE_HELP,
    credential_options,
    exit_status,
    open_client,
    print_error,
    set_verbosity,
    stderr,
    stdout,
    verbose_option,
)
from ._common import configure_logging as _configure_logging

__all__ = [
    "EXIT_BULK_FAILED",
    "EXIT_BULK_UNKNOWN",
    "EXIT_OTHER_ERROR",
    "EXIT_STATUS",
    "EXIT_USAGE",
    "cli",
    "exit_status",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voipnumber")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.pass_context
def cli(context: click.Context, verbose: int) -> None:
    """Send SMS with VoIP Number, or run a local sandbox of the service.

    Credentials come from --account-id/--api-token or from VOIPNUMBER_ACCOUNT_ID and
    VOIPNUMBER_API_TOKEN (prefer the environment: a flag is visible to other users of
    the machine). --sandbox needs none. -v works before or after the command's name.
    """
    set_verbosity(context, verbose)


@cli.command()
@click.argument("from_number", metavar="FROM")
@click.argument("to_number", metavar="TO")
@click.argument("body")
@credential_options
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
            client = open_client(
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
        print_error(error, _SEND_ARGUMENTS)
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


def _parse_faults(
    context: click.Context, parameter: click.Parameter, specs: tuple[str, ...]
) -> tuple[Fault, ...]:
    try:
        return tuple(Fault.from_spec(spec) for spec in specs)
    except ValueError as error:  # it lists the valid kinds
        raise click.BadParameter(str(error)) from None


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
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="KIND[:RATE]",
    callback=_parse_faults,
    help="Misbehave on a share RATE (0 to 1, default 1) of the sends (repeatable, "
    f"checked in order); KIND is one of {', '.join(FAULT_KINDS)}. "
    "Such as outcome_unknown:0.1.",
)
def sandbox_command(
    host: str, port: int, envelope: str, webhooks: tuple[str, ...], faults: tuple[Fault, ...]
) -> None:
    """Run the sandbox service until Ctrl-C, for clients in other processes."""
    logging.getLogger("voipnumber.sandbox").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        _configure_logging(1)
    # No records (nothing outside reads them), only counts; the default window of keys,
    # so that a bulk run against it resumes with the keys it sent still known.
    sandbox = Sandbox(
        envelope="nested" if envelope == "nested" else "single",
        webhooks=_parse_webhooks(webhooks),
        record=False,
        keep=0,
    )
    sandbox.inject(*faults)

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


cli.add_command(bulk)


#: The `segments` command's name for the body, for its error messages.
_SEGMENTS_ARGUMENTS: Final = {"body": "BODY"}


@cli.command()
@click.argument("body")
def segments(body: str) -> None:
    """Estimate how many SMS segments BODY is sent as, and in which encoding.

    BODY - reads the body from standard input (one final newline is not part of it).
    """
    if body == "-":
        body = _read_standard_input()
    try:
        check_body(body)
    except InvalidRequestError as error:
        print_error(error, _SEGMENTS_ARGUMENTS)
        sys.exit(exit_status(error))
    estimate = estimate_segments(body)
    click.echo(
        f"{estimate.segments} segment(s), {estimate.encoding}, "
        f"{estimate.units} units ({estimate.units_per_segment} per segment)"
    )


def _read_standard_input() -> str:
    """All of standard input as UTF-8, without the one newline that `echo` adds."""
    data = sys.stdin.buffer.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise click.UsageError(
            f"standard input is not UTF-8 (byte 0x{data[error.start]:02x} at offset "
            f"{error.start}): convert it first, e.g. with iconv -t UTF-8"
        ) from None
    return text.removesuffix("\n").removesuffix("\r")


# Every command takes -v after its name too (click takes the group's only before it).
for _command in cli.commands.values():
    _command.params.append(verbose_option())
