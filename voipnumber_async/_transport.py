"""Seam 3, the transport: what carries one request to the service and its answer back.

`AsyncVoipNumber(transport=...)` takes any object with one async method,
`handle_async_request(request) -> TransportResponse` (httpx's `AsyncBaseTransport` is
the model). The default is `AiohttpTransport`; `voipnumber_async.testing.MockTransport`
answers from a function, for tests. Everything above the transport (pacing, retries,
decoding, errors) is the same whichever transport carries the request.

A transport reports a failure by what it means for the message:

- `APIConnectionError`: the request was certainly not sent (no connection); retried.
- `OutcomeUnknownError`: it may have been sent (dropped after sending, read timeout).

Any other exception is a bug of the transport: it reaches the caller unchanged, and is
never retried, so nothing is sent twice by accident.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from multidict import CIMultiDict, CIMultiDictProxy

from ._config import Timeout

__all__ = ["AsyncTransport", "TransportRequest", "TransportResponse"]


class TransportRequest:
    """One HTTP request the client asks its transport to send.

    Attributes:
        method: `"POST"`.
        url: The full URL.
        headers: Every header, `Authorization` and `Idempotency-Key` included. The repr
            leaves them out: it is what logs and error trackers record.
        body: The body, bytes (the JSON the service expects).
        timeout: The limits of this attempt: a transport applies `connect`, `read` and
            `total` as `Timeout` describes them.
    """

    __slots__ = ("body", "headers", "method", "timeout", "url")

    def __init__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: Timeout,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout

    def json(self) -> Any:
        """The body, decoded from JSON."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"TransportRequest({self.method} {self.url}, {len(self.body)} bytes)"


class TransportResponse:
    """The service's answer as a transport read it: status, headers and the whole body.

    Attributes:
        status: The HTTP status.
        headers: The headers, looked up case-insensitively.
        body: The body as received (a transport decodes `Content-Encoding`).
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers: Mapping[str, str] = (
            headers
            if isinstance(headers, CIMultiDictProxy)
            else CIMultiDictProxy(CIMultiDict(headers))
        )
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status}, {len(self.body)} bytes)"


@runtime_checkable
class AsyncTransport(Protocol):
    """What sends a request: any object with this one method (and optionally `aclose`).

    The client holds at most `max_connections` requests in a transport at once, and
    calls `aclose()`, when the transport has one, as the client closes.
    """

    async def handle_async_request(self, request: TransportRequest) -> TransportResponse:
        """Send `request` and return the answer.

        Raises:
            APIConnectionError: The request was certainly not sent.
            OutcomeUnknownError: It may have been sent.
        """
        ...
