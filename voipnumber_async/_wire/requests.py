"""What a send puts on the wire: its route, headers, JSON body and idempotency key.

All of it is **assumed** (the service documents only its Node SDK), so each detail is a
constant here and nowhere else; the sandbox reads a request with the same names.
"""

from __future__ import annotations

import json
import os
import threading
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


class _RandomBytes(threading.local):
    """`os.urandom` read ahead, per thread: one system call per 256 keys, not one per key.

    On a busy event loop the call per key cost more than the rest of a send's own work
    together. Per thread, so no two threads ever take the same bytes; dropped in a
    forked child, so a child never repeats its parent's.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.offset = 0

    def take(self, count: int) -> bytes:
        offset = self.offset
        if offset + count > len(self.buffer):
            self.buffer, offset = os.urandom(_RANDOM_READ_AHEAD), 0
        self.offset = offset + count
        return self.buffer[offset : offset + count]

    def forget(self) -> None:
        """Drop the bytes read ahead (this thread's: after a fork, the only one left)."""
        self.buffer, self.offset = b"", 0


_RANDOM_READ_AHEAD: Final = 4096
_random_bytes = _RandomBytes()
if hasattr(os, "register_at_fork"):  # not on Windows, where there is no fork
    os.register_at_fork(after_in_child=_random_bytes.forget)


def new_idempotency_key() -> str:
    """A fresh key for one message: a random (version 4) UUID, as the contract suggests.

    The same 122 random bits from the OS as `uuid.uuid4()`, read ahead in blocks and
    formatted directly: a fraction of its cost, which shows at thousands of messages a
    second.
    """
    raw = bytearray(_random_bytes.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_ = raw.hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


# One encoder, built once: json.dumps with options builds a new one on every call.
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def encode_send_request(from_: str, to: str, body: str) -> bytes:
    """The JSON body of a send request."""
    return _encode_json({"from": from_, "to": to, "body": body}).encode()
