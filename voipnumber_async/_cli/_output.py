"""What the commands print, and how they exit: the consoles, exit statuses, errors.

Errors are printed here, in the shell's words: the SDK's messages advise a Python caller
(`pass account_id=`), and `SHELL_HINTS` turns that advice into the flags and variables
of the command line (`pass --account-id`). Translating here, in one table, leaves the
SDK's messages right for its own callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from rich.console import Console

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
