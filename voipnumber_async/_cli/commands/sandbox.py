"""`voipnumber sandbox`: the sandbox service, for clients in other processes, until Ctrl-C."""

from __future__ import annotations

import logging

import click

from ..._wire.requests import JSON_CONTENT_TYPE
from ...sandbox import (
    DEMO_ACCOUNT_ID,
    DEMO_API_TOKEN,
    FAULT_KINDS,
    INBOUND_TRIGGER_PATH,
    Fault,
    Sandbox,
)
from ...webhooks import DEFAULT_WEBHOOK_PATH
from .._output import stderr, stdout
from .._serve import serve_until_interrupted
from .._verbosity import configure_logging

__all__ = ["sandbox_command"]


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


@click.command("sandbox")
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
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="Answer an account's sends past N a second 429 RATE_LIMITED with a Retry-After "
    "(a smooth limit with 0.1 s of burst). Default: no limit.",
)
def sandbox_command(  # click passes every option by keyword
    *,
    host: str,
    port: int,
    envelope: str,
    webhooks: tuple[str, ...],
    faults: tuple[Fault, ...],
    rate_limit: float | None,
) -> None:
    """Run the sandbox service until Ctrl-C, for clients in other processes."""
    logging.getLogger("voipnumber.sandbox").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        configure_logging(1)
    # No records (nothing outside reads them), only counts; the default window of keys,
    # so that a bulk run against it resumes with the keys it sent still known.
    sandbox = Sandbox(
        envelope="nested" if envelope == "nested" else "single",
        webhooks=_parse_webhooks(webhooks),
        record=False,
        keep=0,
        rate_limit=rate_limit,
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
                f"{INBOUND_TRIGGER_PATH} -H 'Content-Type: {JSON_CONTENT_TYPE}' "
                f"""-d '{{"to": "{number}", "body": "Hello"}}'""",
                highlight=False,
            )

    serve_until_interrupted(serve, "Sandbox", f"{host}:{port}")
