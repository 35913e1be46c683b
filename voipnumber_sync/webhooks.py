"""Receiving SMS and MMS in blocking code (Flask, Django): check and decode a delivery.

```py
from voipnumber_sync.webhooks import WebhookError, parse_inbound

@app.post("/webhooks/voipnumber/<secret>")
def receive(secret):
    try:
        message = parse_inbound(request.get_data(), request.headers,
                                url=request.full_path, secret=WEBHOOK_SECRET)
    except WebhookError as error:
        return {"error": error.reason}, error.http_status
    handle(message)          # answer 2xx only once the message is safely taken
    return {"status": "accepted"}
```

The very same function, model and errors as `voipnumber_async.webhooks`. For a complete
receiver (deduplication included), use `voipnumber_async.webhooks.flask.webhook_view` or
`voipnumber_async.webhooks.django.webhook_view`, with a `SyncDeliveryStore` of your own
to deduplicate across processes.
"""

from voipnumber_async.webhooks import (
    DEFAULT_MAX_WEBHOOK_BYTES,
    DEFAULT_SECRET_PARAM,
    WEBHOOK_HEADERS,
    WEBHOOK_HOST,
    Claim,
    InboundMessage,
    InvalidPayloadError,
    InvalidSecretError,
    MessageType,
    PayloadTooLargeError,
    SyncDeliveryStore,
    SyncMemoryDeliveryStore,
    UnsupportedContentTypeError,
    UntrustedHostError,
    WebhookError,
    parse_inbound,
)

__all__ = [
    "DEFAULT_MAX_WEBHOOK_BYTES",
    "DEFAULT_SECRET_PARAM",
    "WEBHOOK_HEADERS",
    "WEBHOOK_HOST",
    "Claim",
    "InboundMessage",
    "InvalidPayloadError",
    "InvalidSecretError",
    "MessageType",
    "PayloadTooLargeError",
    "SyncDeliveryStore",
    "SyncMemoryDeliveryStore",
    "UnsupportedContentTypeError",
    "UntrustedHostError",
    "WebhookError",
    "parse_inbound",
]
