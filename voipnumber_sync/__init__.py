"""The VoIP Number SDK for code that does not use asyncio: scripts, threads, notebooks.

```py
from voipnumber_sync import VoipNumber

with VoipNumber() as client:             # VOIPNUMBER_ACCOUNT_ID, VOIPNUMBER_API_TOKEN
    message = client.sms.send("+447445459147", "+447483866525", "Thank you")
```

`VoipNumber` is generated from `voipnumber_async.AsyncVoipNumber` and runs it on a
private event loop, so it is the same client with blocking calls. The models and errors
are the very same classes: `except voipnumber_sync.RateLimitError` catches what either
client raises.
"""

from voipnumber_async import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_ACCOUNT_ID,
    ENV_API_TOKEN,
    ENV_BASE_URL,
    NOT_GIVEN,
    APIConnectionError,
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    InboundMessage,
    InvalidPayloadError,
    InvalidRequestError,
    InvalidSecretError,
    MessageInvalidError,
    MessageStatus,
    MessageType,
    NotGiven,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    RateLimitError,
    RetryEvent,
    RetryPolicy,
    SegmentEstimate,
    SentMessage,
    ServiceUnavailableError,
    Timeout,
    UnexpectedResponseError,
    UnsupportedContentTypeError,
    UntrustedHostError,
    VoipNumberError,
    WebhookError,
    __version__,
    estimate_segments,
)

from ._client import Sms, VoipNumber

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_ACCOUNT_ID",
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "ConfigurationError",
    "InboundMessage",
    "InvalidPayloadError",
    "InvalidRequestError",
    "InvalidSecretError",
    "MessageInvalidError",
    "MessageStatus",
    "MessageType",
    "NotGiven",
    "NumberNotFoundError",
    "NumberOwnershipError",
    "OutcomeUnknownError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RetryEvent",
    "RetryPolicy",
    "SegmentEstimate",
    "SentMessage",
    "ServiceUnavailableError",
    "Sms",
    "Timeout",
    "UnexpectedResponseError",
    "UnsupportedContentTypeError",
    "UntrustedHostError",
    "VoipNumber",
    "VoipNumberError",
    "WebhookError",
    "__version__",
    "estimate_segments",
]
