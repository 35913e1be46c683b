"""What a send puts on the wire: its route, headers, JSON body and idempotency key.

All of it is **assumed** (the service documents only its Node SDK), so each detail is a
constant here and nowhere else; the sandbox reads a request with the same names.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

from .._version import __version__

SEND_SMS_PATH: Final = "/v1/sms/send"
HEADER_ACCOUNT_ID: Final = "X-Account-Id"
HEADER_AUTHORIZATION: Final = "Authorization"
HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"
USER_AGENT: Final = f"voipnumber-python/{__version__}"
JSON_CONTENT_TYPE: Final = "application/json"


def base_headers(account_id: str, api_token: str) -> dict[str, str]:
    """The headers every request carries; the caller adds the idempotency key."""
    return {
        "Content-Type": JSON_CONTENT_TYPE,
        "Accept": JSON_CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        HEADER_ACCOUNT_ID: account_id,
        HEADER_AUTHORIZATION: f"Bearer {api_token}",
    }


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or `None` when absent."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def new_idempotency_key() -> str:
    """A fresh key for one message: a random (version 4) UUID, as the contract suggests.

    `uuid.uuid4()` reads `os.urandom` on every call, so no two threads and no forked
    child ever share a key.
    """
    return str(uuid.uuid4())


# One encoder, built once: json.dumps with options builds a new one on every call.
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def encode_send_request(from_: str, to: str, body: str) -> bytes:
    """The JSON body of a send request."""
    return _encode_json({"from": from_, "to": to, "body": body}).encode()
