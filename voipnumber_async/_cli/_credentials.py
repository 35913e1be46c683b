"""Which account a command uses: the credential options, and the client they open."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from voipnumber_sync import VoipNumber

from .._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL
from ..sandbox import DEMO_NUMBER, Sandbox

#: The idempotency keys the sandbox of `--sandbox` remembers: it ends with the command.
EMBEDDED_SANDBOX_KEYS: Final = 100_000

_Command = TypeVar("_Command", bound=Callable[..., Any])


def credential_options(command: _Command) -> _Command:
    """The options that say which account to use (the environment otherwise)."""
    for option in reversed((
        click.option("--account-id", help=f"Default: ${ENV_ACCOUNT_ID}."),
        click.option("--api-token", help=f"Default: ${ENV_API_TOKEN}."),
        click.option("--base-url", help=f"Default: ${ENV_BASE_URL}, else the service."),
        click.option(
            "--sandbox", "use_sandbox", is_flag=True,
            help=f"Use an embedded sandbox and its demo account (sending from {DEMO_NUMBER}).",
        ),
    )):  # fmt: skip
        command = option(command)
    return command


def open_client(
    stack: contextlib.ExitStack,
    use_sandbox: bool,
    account_id: str | None,
    api_token: str | None,
    base_url: str | None,
    **options: Any,
) -> VoipNumber:
    """A client of the embedded sandbox's demo account, or of the given credentials.

    Both live until `stack` closes.

    Raises:
        ConfigurationError: A credential is missing or a setting is invalid.
    """
    settings: dict[str, Any] = {
        "account_id": account_id, "api_token": api_token, "base_url": base_url,
    }  # fmt: skip
    if use_sandbox:
        # Flat memory over a run of a million rows: counts, no records (nothing reads
        # them), and keys only as long as a retry within this run can come.
        sandbox = Sandbox(record=False, keep=0, keep_keys=EMBEDDED_SANDBOX_KEYS)
        settings = {**stack.enter_context(sandbox.serve_in_thread()).client_settings()}
    return stack.enter_context(VoipNumber(**settings, **options))
