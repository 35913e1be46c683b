"""`MockTransport`: the service faked by a function, for tests without a server.

```py
from voipnumber_async.testing import MockResponse, MockTransport

client = AsyncVoipNumber("AC1", "token", transport=MockTransport(MockResponse.queued))
```

Every SDK behaviour above the transport (validation, pacing, retries, decoding, typed
errors) runs as it does against the service: only the network is replaced.
"""

from __future__ import annotations

import inspect
import json as json_module
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any, NoReturn

from .._errors import APIConnectionError, OutcomeUnknownError
from .._models import MessageStatus, SentMessage
from .._transport import TransportRequest, TransportResponse
from .._wire.answers import encode_error, encode_send_success
from .._wire.codes import ERROR_DESCRIPTIONS, ERROR_HTTP_STATUS
from .._wire.requests import JSON_CONTENT_TYPE

__all__ = ["Handler", "MockResponse", "MockTransport"]

_NO_JSON: Any = object()


class MockResponse(TransportResponse):
    """An answer for `MockTransport`'s handler to return.

    ```py
    MockResponse(200, json={"status": "OK", "result": {...}})
    MockResponse(503, headers={"Retry-After": "2"})
    MockResponse(502, body="<html>Bad Gateway</html>")
    ```

    Args:
        status: The HTTP status.
        json: A value to answer as JSON (sets `Content-Type: application/json`).
        body: The raw body instead, bytes or text (encoded as UTF-8).
        headers: Headers to answer with.
    """

    __slots__ = ()

    def __init__(
        self,
        status: int = 200,
        *,
        json: Any = _NO_JSON,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        all_headers = dict(headers or {})
        if json is not _NO_JSON:
            body = json_module.dumps(json).encode()
            all_headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        elif isinstance(body, str):
            body = body.encode()
        super().__init__(status, all_headers, body)

    @classmethod
    def queued(cls, request: TransportRequest) -> MockResponse:
        """The service's answer to a send it accepted: the message queued, with a new id.

        A handler in itself: `MockTransport(MockResponse.queued)` accepts every send.
        """
        now = int(time.time())
        message = SentMessage(
            id=str(uuid.uuid4()),
            status=MessageStatus.QUEUED,
            body=str(request.json().get("body", "")),
            timestamp_s=now,
            created=datetime.fromtimestamp(now, tz=timezone.utc),
        )
        return cls(
            200,
            body=encode_send_success(message),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )

    @classmethod
    def error(cls, code: str, description: str | None = None) -> MockResponse:
        """The service's answer with a documented error code, e.g. `"NUMBER_OWNERSHIP"`.

        Answered with the HTTP status the SDK expects for the code, so that the client
        raises the same error class as it would against the service.
        """
        if code not in ERROR_HTTP_STATUS:
            raise ValueError(
                f"{code!r} is not a documented error code; use one of "
                f"{', '.join(sorted(ERROR_HTTP_STATUS))}, or MockResponse(status, json=...)"
            )
        return cls(
            ERROR_HTTP_STATUS[code],
            body=encode_error(code, description or ERROR_DESCRIPTIONS[code]),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )


#: A `MockTransport` handler: a request in, an answer out, as a function or a coroutine.
Handler = Callable[[TransportRequest], "TransportResponse | Awaitable[TransportResponse]"]


class MockTransport:
    """A transport that answers every request from `handler`, and records them.

    ```py
    def handler(request):          # request.method, .url, .headers, .body, .json()
        if request.json()["to"] == "+447000000000":
            MockTransport.drop()   # the connection drops after sending
        return MockResponse.queued(request)

    transport = MockTransport(handler)
    async with AsyncVoipNumber("AC1", "token", transport=transport) as client:
        ...
    assert len(transport.requests) == 1
    ```

    The handler may be a function or a coroutine function. It may raise what a real
    transport raises: `MockTransport.drop()` (the request was sent, no answer came) or
    `MockTransport.refuse()` (nothing was sent), or `APIConnectionError` /
    `OutcomeUnknownError` of its own. The sync client takes it too.

    Attributes:
        requests: Every request the client made through this transport, in order.
    """

    def __init__(self, handler: Handler) -> None:
        if not callable(handler):
            raise TypeError(
                f"MockTransport takes a handler function, got {type(handler).__name__}; "
                "to answer every request alike, pass `lambda request: MockResponse(...)`"
            )
        self._handler = handler
        self.requests: list[TransportRequest] = []

    async def handle_async_request(self, request: TransportRequest) -> TransportResponse:
        """Record `request` and answer it with the handler."""
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if not isinstance(answer, TransportResponse):
            raise TypeError(
                f"the MockTransport handler returned {type(answer).__name__}; return a "
                "MockResponse (or raise MockTransport.drop() / MockTransport.refuse())"
            )
        return answer

    @staticmethod
    def drop() -> NoReturn:
        """Fail the request as a connection dropped after it was sent: outcome unknown."""
        raise OutcomeUnknownError(
            "MockTransport.drop(): the connection dropped after the request was sent; "
            "the message may have been sent"
        )

    @staticmethod
    def refuse() -> NoReturn:
        """Fail the request as a refused connection: nothing was sent, safe to retry."""
        raise APIConnectionError(
            "MockTransport.refuse(): the connection was refused; nothing was sent"
        )
