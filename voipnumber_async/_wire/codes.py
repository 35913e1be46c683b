"""The documented error codes and the (**assumed**) HTTP statuses, as data.

For each code: its documented description, the error class it is raised as, the HTTP
status the service answers it with, and what to do about it; for an answer with no
documented code, the class its HTTP status stands for. `answers` reads these tables; the
sandbox answers from the same ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .._errors import (
    APIError,
    AuthenticationError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    VoipNumberError,
)

#: The documented codes with their documented descriptions.
ERROR_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "USER_ACCOUNT_MISSING": "AccountId not set or empty",
    "API_TOKEN_MISSING": "API token not set or empty",
    "USER_NOT_FOUND": "User with this AccountId cannot be found",
    "API_TOKEN_INVALID": "API token doesn't match AccountId",
    "NUMBER_NOT_FOUND": "Number doesn't exist on VoIP Number",
    "NUMBER_OWNERSHIP": "Number doesn't belong to this account",
    "MESSAGE_INVALID": "Coding syntax error",
}

#: The class each documented code is raised as, whatever the HTTP status.
ERROR_CLASSES: Final[Mapping[str, type[APIError]]] = {
    "USER_ACCOUNT_MISSING": AuthenticationError,
    "API_TOKEN_MISSING": AuthenticationError,
    "USER_NOT_FOUND": AuthenticationError,
    "API_TOKEN_INVALID": AuthenticationError,
    "NUMBER_NOT_FOUND": NumberNotFoundError,
    "NUMBER_OWNERSHIP": NumberOwnershipError,
    "MESSAGE_INVALID": MessageInvalidError,
}

#: The HTTP status each documented code is answered with (**assumed**).
ERROR_HTTP_STATUS: Final[Mapping[str, int]] = {
    "USER_ACCOUNT_MISSING": 401,
    "API_TOKEN_MISSING": 401,
    "USER_NOT_FOUND": 401,
    "API_TOKEN_INVALID": 401,
    "NUMBER_NOT_FOUND": 404,
    "NUMBER_OWNERSHIP": 403,
    "MESSAGE_INVALID": 400,
}

#: The class an answer with no documented code is raised as, by HTTP status (**assumed**).
STATUS_CLASSES: Final[Mapping[int, type[VoipNumberError]]] = {
    401: AuthenticationError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    500: OutcomeUnknownError,
    504: OutcomeUnknownError,
}

#: What to do about each code, added to the error's message.
ERROR_HINTS: Final[Mapping[str, str]] = {
    "USER_ACCOUNT_MISSING": "pass account_id= or set VOIPNUMBER_ACCOUNT_ID",
    "API_TOKEN_MISSING": "pass api_token= or set VOIPNUMBER_API_TOKEN",
    "USER_NOT_FOUND": "check the account id on the Settings page of your VoIP Number account",
    "API_TOKEN_INVALID": (
        "the token does not belong to this account id, or it was regenerated: copy the "
        "current one from Settings and pass it as api_token= (a live client takes it with "
        "client.rotate_api_token())"
    ),
    "NUMBER_NOT_FOUND": "send from a number that exists on VoIP Number and is on your account",
    "NUMBER_OWNERSHIP": "send from a number on this account with SMS capability",
    "MESSAGE_INVALID": "the request was malformed; check from_, to and body",
}

#: What to do about an error of each class that carries no documented code.
STATUS_HINTS: Final[Mapping[type[VoipNumberError], str]] = {
    AuthenticationError: "check the account id and API token",
    RateLimitError: "slow down; wait retry_after seconds before sending again",
    ServiceUnavailableError: "the message was not sent; it is safe to try again later",
    OutcomeUnknownError: (
        "the message may have been sent; to try again without risking a duplicate, "
        "send it with idempotency_key= set to this error's idempotency_key"
    ),
}
