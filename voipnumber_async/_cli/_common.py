"""What every command of `voipnumber` shares: output, exit statuses, logging, the client.

Errors are printed here, in the shell's words: the SDK's messages advise a Python caller
(`pass account_id=`), and `SHELL_HINTS` turns that advice into the flags and variables
of the command line (`pass --account-id`). Translating here, in one table, leaves the
SDK's messages right for its own callers.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import click
from rich.console import Console

from voipnumber_sync import VoipNumber

from .._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL
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
from ..sandbox import DEMO_NUMBER, Sandbox

#: The idempotency keys the sandbox of `--sandbox` remembers: it ends with the command.
EMBEDDED_SANDBOX_KEYS: Final = 100_000

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
#: click's own status for a usage error; the CLI's checks of its input use it too.
EXIT_USAGE = 2

#: The SDK's advice to a Python caller, and the same advice on the command line.
SHELL_HINTS: Final[Mapping[str, str]] = {
    f"pass account_id= or set {ENV_ACCOUNT_ID}": f"pass --account-id or set ${ENV_ACCOUNT_ID}",
    f"pass api_token= or set {ENV_API_TOKEN}": f"pass --api-token or set ${ENV_API_TOKEN}",
    f"from base_url= or {ENV_BASE_URL}": f"from --base-url or ${ENV_BASE_URL}",
    "pass it as api_token= (a live client takes it with client.rotate_api_token())": (
        f"pass it with --api-token or ${ENV_API_TOKEN}"
    ),
    "send it with idempotency_key= set to this error's idempotency_key": (
        "send it again with the same idempotency key (send: --idempotency-key; "
        "bulk: the same --journal with --resend-unknown)"
    ),
    "resume with resend_unknown=True": "resume with --resend-unknown",
    "wait retry_after seconds": "wait the seconds the service asked for",
    "check from_, to and body": "check the sender, the recipient and the body",
}

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def exit_status(error: VoipNumberError) -> int:
    """The exit status for `error`: that of its nearest class in `EXIT_STATUS`."""
    for cls in type(error).__mro__:
        if cls in EXIT_STATUS:
            return EXIT_STATUS[cls]
    return EXIT_OTHER_ERROR


def shell_text(error: VoipNumberError, arguments: Mapping[str, str] | None = None) -> str:
    """`str(error)` as a command-line user reads it.

    `arguments` names the command's arguments for the SDK's parameters (`from_` ->
    `FROM`): an `InvalidRequestError` about one then starts with the name as typed.
    """
    text = str(error)
    field = error.field if isinstance(error, InvalidRequestError) else None
    if arguments and field is not None and field in arguments and text.startswith(f"{field} "):
        text = arguments[field] + text[len(field) :]
    for python, shell in SHELL_HINTS.items():
        text = text.replace(python, shell)
    return text


def print_error(error: VoipNumberError, arguments: Mapping[str, str] | None = None) -> None:
    """Print `error` on stderr: its class, its message in the shell's words, its details."""
    text = shell_text(error, arguments)
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


# --- logging ---------------------------------------------------------------------------

#: Where the group's `-v` count waits for a command's own `-v`, in the root context.
_VERBOSITY: Final = "voipnumber.verbosity"


def configure_logging(verbose: int) -> None:
    """Log to stderr: warnings, `-v` also retries (INFO), `-vv` every attempt (DEBUG)."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(level)


def set_verbosity(context: click.Context, verbose: int) -> None:
    """Record the group's `-v` count (given before the command) and apply it."""
    context.find_root().meta[_VERBOSITY] = verbose
    configure_logging(verbose)


def _add_verbosity(context: click.Context, _: click.Parameter, verbose: int) -> None:
    # A command's -v adds to the group's: `voipnumber -v send -v ...` is -vv.
    if verbose:
        set_verbosity(context, context.find_root().meta.get(_VERBOSITY, 0) + verbose)


VERBOSE_HELP: Final = "-v: log retries; -vv: log every attempt."


def verbose_option() -> click.Option:
    """`-v`/`--verbose` for a command, so that it also works after the command's name.

    (click takes a group's options only before the command.)
    """
    return click.Option(
        ["-v", "--verbose"],
        count=True,
        expose_value=False,
        callback=_add_verbosity,
        help=VERBOSE_HELP,
    )


# --- the client ------------------------------------------------------------------------


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
