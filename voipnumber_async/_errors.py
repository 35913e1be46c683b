"""The exceptions of the SDK: one tree, shared by the async client and the sync facade.

```
VoipNumberError                      .may_have_been_sent on every error
├── InvalidRequestError(ValueError)  caught before sending; nothing was sent
│   └── ConfigurationError           the client itself is misconfigured (missing credentials, ...)
├── ClientClosedError(RuntimeError)  the client was used after aclose()/close()
├── RunStoppedError                  a bulk run was stopped before this message was sent
├── APIError                         the service answered an error: .code .description .http_status
│   ├── AuthenticationError          USER_ACCOUNT_MISSING, API_TOKEN_MISSING,
│   │                                USER_NOT_FOUND, API_TOKEN_INVALID
│   ├── NumberNotFoundError          NUMBER_NOT_FOUND
│   ├── NumberOwnershipError         NUMBER_OWNERSHIP
│   ├── MessageInvalidError          MESSAGE_INVALID
│   ├── RateLimitError               HTTP 429; .retry_after (seconds or None)
│   └── ServiceUnavailableError      HTTP 502/503: the request was not processed
├── APIConnectionError               could not connect or send: nothing was sent
├── RedisUnavailableError            a Redis pacer or journal lost Redis: nothing was sent
├── OutcomeUnknownError              HTTP 500/504, connection dropped after sending, read timeout
├── UnexpectedResponseError          not JSON, or JSON of no known shape: .http_status .excerpt
└── WebhookError                     an inbound delivery failed a check: .http_status to answer
    ├── PayloadTooLargeError         413: the body is over the size cap
    ├── InvalidPayloadError          400: not JSON, not an object, a field missing or mistyped
    ├── UnsupportedContentTypeError  415: not application/json
    ├── UntrustedHostError           403: the Host header is not the service's
    └── InvalidSecretError           403: the webhook URL does not carry the shared secret
```

Every failure of a send falls in one of three groups, told by `may_have_been_sent`:
*not sent* (validation, connection errors, 429, 502/503), *rejected* (documented error
codes: the service answered and sent nothing), or *outcome unknown* (`True`: the message
may have gone out; sending it again may deliver it twice).

Every error carries `attempts` (how many requests were made) and `idempotency_key` (the
key all of them carried), survives pickling, and never holds the API token. Which
answer becomes which error is decided in one place: `voipnumber_async._wire.answers`.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "InvalidPayloadError",
    "InvalidRequestError",
    "InvalidSecretError",
    "MessageInvalidError",
    "NumberNotFoundError",
    "NumberOwnershipError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RedisUnavailableError",
    "RunStoppedError",
    "ServiceUnavailableError",
    "UnexpectedResponseError",
    "UnsupportedContentTypeError",
    "UntrustedHostError",
    "VoipNumberError",
    "WebhookError",
]


def _rebuild(cls: type[VoipNumberError], message: str, state: dict[str, Any]) -> VoipNumberError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class VoipNumberError(Exception):
    """The base class of every error the SDK raises.

    Attributes:
        message: What went wrong and what to do about it.
        may_have_been_sent: `True` only when the message may have reached the service
            and been sent: retrying it without its idempotency key could send it twice.
        attempts: How many requests were made for this message (0 when none was).
        idempotency_key: The `Idempotency-Key` every attempt carried, or `None` when no
            request was attempted. Keep it to retry the same message safely later.
        http_status: The HTTP status of the last answer, if there was one.
        code: The service's error code, if its answer carried one.
        description: The service's description of that code, if any.
        request_id: The service's request id of the last answer, if it sent one.
    """

    may_have_been_sent: bool
    default_may_have_been_sent: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        may_have_been_sent: bool | None = None,
        http_status: int | None = None,
        code: str | None = None,
        description: str | None = None,
        request_id: str | None = None,
        attempts: int = 0,
        idempotency_key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.may_have_been_sent = (
            self.default_may_have_been_sent if may_have_been_sent is None else may_have_been_sent
        )
        self.http_status = http_status
        self.code = code
        self.description = description
        self.request_id = request_id
        self.attempts = attempts
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        shown = {
            key: value
            for key, value in self.__dict__.items()
            if key != "message" and value is not None and not key.startswith("_")
        }
        details = "".join(f", {key}={value!r}" for key, value in shown.items())
        return f"{type(self).__name__}({self.message!r}{details})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors defeat Exception's default pickling; rebuilding
        # from the instance dict keeps every attribute, subclasses' included.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


class InvalidRequestError(VoipNumberError, ValueError):
    """A value given to the SDK is wrong; nothing was sent.

    Attributes:
        field: The name of the offending argument (`"to"`, `"body"`, ...).
    """

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class ConfigurationError(InvalidRequestError):
    """The client cannot be built as asked: a credential is missing or a setting is invalid."""


class ClientClosedError(VoipNumberError, RuntimeError):
    """The client was used after it was closed; nothing was sent."""

    @classmethod
    def while_waiting(cls) -> ClientClosedError:
        """The error of a request that waited to be sent while its client was closed."""
        return cls(
            "this voipnumber client was closed while the request waited to be sent; "
            "nothing was sent. Close the client only once its sends are done"
        )


class RunStoppedError(VoipNumberError):
    """A `send_many` run was stopped (`stop()`, Ctrl-C, SIGTERM) before this message was sent.

    Nothing was sent for it (unless `may_have_been_sent` says an earlier attempt may
    have been), and the run's journal records it as not sent: resuming the run with the
    same journal sends it.
    """


class APIError(VoipNumberError):
    """The service answered with an error.

    Unknown error codes are raised as a plain `APIError` that keeps `code` and
    `description`, so new codes never crash the decoder.

    Attributes:
        retry_after: Seconds the service asked to wait before trying again, if it said.
    """

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AuthenticationError(APIError):
    """The account id or API token is missing, unknown, or does not match."""


class NumberNotFoundError(APIError):
    """The sending number does not exist on VoIP Number (`NUMBER_NOT_FOUND`)."""


class NumberOwnershipError(APIError):
    """The sending number is not on this account (`NUMBER_OWNERSHIP`)."""


class MessageInvalidError(APIError):
    """The service rejected the message as malformed (`MESSAGE_INVALID`)."""


class RateLimitError(APIError):
    """Too many requests (HTTP 429); nothing was sent. `retry_after` says how long to wait."""


class ServiceUnavailableError(APIError):
    """The service or a proxy in front of it did not process the request (HTTP 502/503)."""


class APIConnectionError(VoipNumberError):
    """The request could not be delivered (DNS, refused connection, TLS, connect timeout).

    Nothing reached the service, so it is safe to try again.
    """


class RedisUnavailableError(VoipNumberError):
    """The Redis that a shared pacer or a campaign journal keeps its state in did not answer.

    Nothing was sent: a message is never sent unpaced or unjournaled. The pacer waits
    for Redis up to its `unavailable_timeout` before raising this; a bulk run stops at
    it, and a campaign's chunk is retried later, when Redis is back.
    """


class OutcomeUnknownError(VoipNumberError):
    """The request was sent, but whether the message was processed is unknown.

    Raised for HTTP 500 and 504, a connection dropped after sending, and a read
    timeout. Not retried unless `RetryPolicy(retry_outcome_unknown=True)`; then it is
    retried with the same `Idempotency-Key`, which the service is assumed to honour.
    To try again by hand, pass `idempotency_key=error.idempotency_key`.
    """

    default_may_have_been_sent: ClassVar[bool] = True


class UnexpectedResponseError(VoipNumberError):
    """The service answered with something that is not JSON, or JSON of no known shape.

    Attributes:
        excerpt: The first characters of the answer's body, for diagnosis.
    """

    default_may_have_been_sent: ClassVar[bool] = True

    def __init__(self, message: str, *, excerpt: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.excerpt = excerpt


class WebhookError(VoipNumberError):
    """An inbound delivery failed one of `parse_inbound`'s checks.

    `http_status` is the status a receiver answers with (the receiver of
    `voipnumber_async.webhooks.create_app` does), and `reason` a short machine-readable
    name of the check.
    """

    default_http_status: ClassVar[int] = 400
    reason: ClassVar[str] = "invalid_delivery"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("http_status", self.default_http_status)
        super().__init__(message, **kwargs)


class PayloadTooLargeError(WebhookError):
    """The delivery's body is larger than the receiver accepts (HTTP 413)."""

    default_http_status: ClassVar[int] = 413
    reason: ClassVar[str] = "payload_too_large"


class InvalidPayloadError(WebhookError):
    """The body is not JSON, not an object, or a field is missing or of the wrong type (400).

    Attributes:
        field: The offending field, when one is to blame.
    """

    default_http_status: ClassVar[int] = 400
    reason: ClassVar[str] = "invalid_payload"

    def __init__(self, message: str, *, field: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.field = field


class UnsupportedContentTypeError(WebhookError):
    """The delivery is not `application/json` (HTTP 415)."""

    default_http_status: ClassVar[int] = 415
    reason: ClassVar[str] = "unsupported_content_type"


class UntrustedHostError(WebhookError):
    """The `Host` header is not the one the service sends (HTTP 403).

    The check the service suggests; any client can send that header, so it stops
    mistakes, not attackers. Use a secret in the webhook URL for that.
    """

    default_http_status: ClassVar[int] = 403
    reason: ClassVar[str] = "untrusted_host"


class InvalidSecretError(WebhookError):
    """The webhook URL does not carry the shared secret (HTTP 403)."""

    default_http_status: ClassVar[int] = 403
    reason: ClassVar[str] = "invalid_secret"
