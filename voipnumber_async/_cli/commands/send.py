"""`voipnumber send`: one SMS, with the blocking client (a command has no loop to share)."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Final

import click
from rich.table import Table

from ..._errors import VoipNumberError
from ..._segments import estimate_segments
from ..._wire.convert import converter
from .._credentials import credential_options, open_client
from .._output import exit_status, print_error, stdout

__all__ = ["send"]

#: The `send` command's names for the client's parameters, for its error messages.
_SEND_ARGUMENTS: Final = {
    "from_": "FROM",
    "to": "TO",
    "body": "BODY",
    "idempotency_key": "--idempotency-key",
}


@click.command()
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
def send(  # noqa: PLR0917 - click passes every option as an argument
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
