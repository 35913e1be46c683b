"""The VoIP Number SDK for asyncio: send SMS with safe retries and typed errors.

```py
from voipnumber_async import AsyncVoipNumber

async with AsyncVoipNumber() as client:   # VOIPNUMBER_ACCOUNT_ID, VOIPNUMBER_API_TOKEN
    message = await client.sms.send("+447445459147", "+447483866525", "Thank you")
```

For code that does not use asyncio, `voipnumber_sync.VoipNumber` is the same client
with blocking calls.
"""

from ._aiohttp import AiohttpTransport
from ._bulk import (
    DEFAULT_CONCURRENCY,
    AsyncSendMany,
    BulkSummary,
    Journal,
    JournalEntry,
    JournalMismatchError,
    MessageLike,
    OutgoingMessage,
    SendResult,
    SqliteJournal,
)
from ._client import NOT_GIVEN, AsyncSms, AsyncVoipNumber, NotGiven
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_ACCOUNT_ID,
    ENV_API_TOKEN,
    ENV_BASE_URL,
    Timeout,
)
from ._errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    InvalidPayloadError,
    InvalidRequestError,
    InvalidSecretError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    PayloadTooLargeError,
    RateLimitError,
    RedisUnavailableError,
    RunStoppedError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    UnsupportedContentTypeError,
    UntrustedHostError,
    VoipNumberError,
    WebhookError,
)
from ._models import InboundMessage, MessageStatus, MessageType, SentMessage
from ._rate import LocalPacer, Pacer
from ._retry import RetryEvent, RetryPolicy
from ._segments import SegmentEstimate, estimate_segments
from ._transport import AsyncTransport, TransportRequest, TransportResponse
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_ACCOUNT_ID",
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "NOT_GIVEN",
    "APIConnectionError",
    "APIError",
    "AiohttpTransport",
    "AsyncSendMany",
    "AsyncSms",
    "AsyncTransport",
    "AsyncVoipNumber",
    "AuthenticationError",
    "BulkSummary",
    "ClientClosedError",
    "ConfigurationError",
    "InboundMessage",
    "InvalidPayloadError",
    "InvalidRequestError",
    "InvalidSecretError",
    "Journal",
    "JournalEntry",
    "JournalMismatchError",
    "LocalPacer",
    "MessageInvalidError",
    "MessageLike",
    "MessageStatus",
    "MessageType",
    "NotGiven",
    "NumberNotFoundError",
    "NumberOwnershipError",
    "OutcomeUnknownError",
    "OutgoingMessage",
    "Pacer",
    "PayloadTooLargeError",
    "RateLimitError",
    "RedisUnavailableError",
    "RetryEvent",
    "RetryPolicy",
    "RunStoppedError",
    "SegmentEstimate",
    "SendResult",
    "SentMessage",
    "ServiceUnavailableError",
    "SqliteJournal",
    "Timeout",
    "TransportRequest",
    "TransportResponse",
    "UnexpectedResponseError",
    "UnsupportedContentTypeError",
    "UntrustedHostError",
    "VoipNumberError",
    "WebhookError",
    "__version__",
    "estimate_segments",
]
