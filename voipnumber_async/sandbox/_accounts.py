"""The accounts the sandbox knows: the demo credentials, and who may send from which number."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import attrs

from ._limits import check_rate_limit

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_API_TOKEN",
    "DEMO_NUMBER",
    "OTHER_ACCOUNT_NUMBER",
    "SandboxAccount",
    "default_accounts",
    "header_bytes",
    "token_matches",
]

DEMO_ACCOUNT_ID = "demo-account"
DEMO_API_TOKEN = "demo-token"  # noqa: S105 - a public sandbox credential
DEMO_NUMBER = "+447445459147"
OTHER_ACCOUNT_NUMBER = "+447700900999"
"""A number that exists in the sandbox but belongs to another account."""


def _as_tuple(numbers: Iterable[str]) -> tuple[str, ...]:
    return tuple(numbers)


@attrs.frozen(kw_only=True)
class SandboxAccount:
    """An account the sandbox knows: its credentials and the numbers it may send from.

    Attributes:
        rate_limit: Sends a second past which this account is answered 429
            `RATE_LIMITED` with a `Retry-After` (a smooth limit, 0.1 s of burst); `None`
            for the sandbox's own `rate_limit`.
    """

    account_id: str
    api_token: str = attrs.field(repr=False)
    numbers: tuple[str, ...] = attrs.field(converter=_as_tuple, default=())
    rate_limit: float | None = attrs.field(default=None, validator=check_rate_limit)


def default_accounts() -> list[SandboxAccount]:
    """The demo account (owning `DEMO_NUMBER`) and another one (`OTHER_ACCOUNT_NUMBER`)."""
    return [
        SandboxAccount(
            account_id=DEMO_ACCOUNT_ID,
            api_token=DEMO_API_TOKEN,
            numbers=(DEMO_NUMBER, "+447445459148"),
        ),
        SandboxAccount(
            account_id="other-account",
            api_token="other-token",  # noqa: S106 - a sandbox credential
            numbers=(OTHER_ACCOUNT_NUMBER,),
        ),
    ]


def header_bytes(value: str) -> bytes:
    """A header value as the bytes that came on the wire."""
    # aiohttp decodes header values with surrogateescape: a byte that is not UTF-8 in a
    # token must compare as unequal, not fail to encode (a 500).
    return value.encode("utf-8", "surrogateescape")


def token_matches(account: SandboxAccount, token: str) -> bool:
    """Whether `token` (from a request's header) is `account`'s, in constant time."""
    return hmac.compare_digest(header_bytes(token), header_bytes(account.api_token))
