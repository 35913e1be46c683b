"""Receiving SMS and MMS: the service POSTs JSON to your webhook for every message.

- `parse_inbound(body, headers, ...)` checks and decodes one delivery. Pure (no I/O),
  so it works in any framework: Flask, Django, FastAPI, a queue consumer.
- `create_app(handler, ...)` is a ready aiohttp receiver: it checks each delivery,
  calls `handler` once per message (redeliveries of an `mdr_id` are deduplicated), and
  answers the service so it knows what to deliver again.
- `.django.webhook_view`, `.flask.webhook_view` and `.starlette.webhook_route` (for
  FastAPI too) are the same receiver for those frameworks; each of those modules
  imports its framework, this package none of them.

Both take the body as sent: gzip or deflate is inflated under the same size cap, and
anything that is not a message is refused with a `WebhookError` whose `http_status`
(4xx) says why, never an exception of another kind.

Secure the endpoint with a secret in the webhook URL (`secret=`): the `Host` check the
service suggests is on by default, but any client can fake that header.
"""

from .._errors import (
    InvalidPayloadError,
    InvalidSecretError,
    PayloadTooLargeError,
    UnsupportedContentTypeError,
    UntrustedHostError,
    WebhookError,
)
from .._models import InboundMessage, MessageType
from .._wire.inbound import WEBHOOK_HEADERS, WEBHOOK_HOST
from ._body import DEFAULT_MAX_WEBHOOK_BYTES
from ._parse import DEFAULT_SECRET_PARAM, parse_inbound
from ._receiver import DEFAULT_BODY_TIMEOUT, DEFAULT_WEBHOOK_PATH, InboundHandler, create_app
from ._store import (
    Claim,
    DeliveryStore,
    MemoryDeliveryStore,
    SyncDeliveryStore,
    SyncMemoryDeliveryStore,
)

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_MAX_WEBHOOK_BYTES",
    "DEFAULT_SECRET_PARAM",
    "DEFAULT_WEBHOOK_PATH",
    "WEBHOOK_HEADERS",
    "WEBHOOK_HOST",
    "Claim",
    "DeliveryStore",
    "InboundHandler",
    "InboundMessage",
    "InvalidPayloadError",
    "InvalidSecretError",
    "MemoryDeliveryStore",
    "MessageType",
    "PayloadTooLargeError",
    "SyncDeliveryStore",
    "SyncMemoryDeliveryStore",
    "UnsupportedContentTypeError",
    "UntrustedHostError",
    "WebhookError",
    "create_app",
    "parse_inbound",
]
