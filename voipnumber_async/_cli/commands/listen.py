"""`voipnumber listen`: a webhook receiver that prints each inbound message as JSON."""

from __future__ import annotations

import json
import logging
import sys

import click
from aiohttp import web

from ..._models import InboundMessage
from ..._wire.convert import converter
from ..._wire.inbound import WEBHOOK_HOST
from ...webhooks import DEFAULT_WEBHOOK_PATH, create_app
from .._output import stderr
from .._serve import serve_until_interrupted
from .._verbosity import configure_logging

__all__ = ["listen"]


class _OneSecretPerVariable(click.types.StringParamType):
    """A `--secret`, repeatable; its environment variable holds one, spaces and all.

    (Click splits a repeatable option's variable at whitespace: a secret with a space
    would become two shorter secrets, each accepted.)
    """

    name = "secret"

    def split_envvar_value(self, rv: str) -> list[str]:
        """The variable's value, whole."""
        return [rv]


@click.command()
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
        configure_logging(1)

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

    serve_until_interrupted(serve, "Listener", f"{host}:{port}")
