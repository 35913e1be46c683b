"""An embedded VoIP Number service for tests, demos and development.

```py
from voipnumber_async import AsyncVoipNumber
from voipnumber_async.sandbox import Fault, Sandbox

async with Sandbox() as sandbox, AsyncVoipNumber(**sandbox.client_settings()) as client:
    sandbox.inject(Fault.unavailable(times=2))          # two 503s, then normal answers
    await client.sms.send("+447445459147", "+447483866525", "Thank you")
    assert len(sandbox.messages) == 1 and len(sandbox.requests) == 3
```

It implements the same wire contract as the client (`voipnumber_async._wire`), so a
correction to the contract reaches both. Its modules, by role: `_accounts` (who may send
from which number), `_state` (what it records and counts), `_idempotency` (first answers
by key), `_faults`, `_app` (the HTTP routes and handlers), `_inbound` and `_delivery`
(orders for inbound messages, and the webhook client), `_runner` (`Sandbox`: serving).
"""

from ._accounts import (
    DEMO_ACCOUNT_ID,
    DEMO_API_TOKEN,
    DEMO_NUMBER,
    OTHER_ACCOUNT_NUMBER,
    SandboxAccount,
)
from ._app import INBOUND_TRIGGER_PATH
from ._faults import FAULT_KINDS, Fault
from ._records import AcceptedMessage, Delivery, Recent, RecordedRequest
from ._runner import ClientSettings, Sandbox
from ._state import DEFAULT_KEEP_KEYS

__all__ = [
    "DEFAULT_KEEP_KEYS",
    "DEMO_ACCOUNT_ID",
    "DEMO_API_TOKEN",
    "DEMO_NUMBER",
    "FAULT_KINDS",
    "INBOUND_TRIGGER_PATH",
    "OTHER_ACCOUNT_NUMBER",
    "AcceptedMessage",
    "ClientSettings",
    "Delivery",
    "Fault",
    "Recent",
    "RecordedRequest",
    "Sandbox",
    "SandboxAccount",
]
