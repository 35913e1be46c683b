"""Testing code that uses the SDK: a mock transport, and pytest fixtures for the sandbox.

Unit tests fake the service with a function, no server and no network:

```py
from voipnumber_async.testing import MockResponse, MockTransport

transport = MockTransport(MockResponse.queued)
client = AsyncVoipNumber("AC1", "token", transport=transport)
```

Integration tests talk real HTTP to the embedded sandbox through pytest fixtures;
enable them in a `conftest.py`:

```py
pytest_plugins = ["voipnumber_async.testing"]

def test_welcome_sms(voipnumber_sandbox):
    send_welcome_sms(**voipnumber_sandbox.client_settings())   # your code
    assert [m.to for m in voipnumber_sandbox.messages] == ["+447483866525"]
```

The sandbox serves from a thread of its own, so the same fixture works for blocking
tests and for async tests on any event loop. The fixtures need pytest, and nothing
else; the mock transport needs nothing.
"""

from __future__ import annotations

import importlib.util

from ._mock import Handler, MockResponse, MockTransport

__all__ = ["Handler", "MockResponse", "MockTransport"]

if importlib.util.find_spec("pytest") is not None:
    from ._fixtures import voipnumber_env, voipnumber_sandbox

    __all__ += ["voipnumber_env", "voipnumber_sandbox"]
