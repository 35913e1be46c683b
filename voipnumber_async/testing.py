"""Pytest fixtures for testing code that uses the SDK, against the embedded sandbox.

Enable them in a `conftest.py`:

```py
pytest_plugins = ["voipnumber_async.testing"]

def test_welcome_sms(voipnumber_sandbox):
    send_welcome_sms(**voipnumber_sandbox.client_settings())   # your code
    assert [m.to for m in voipnumber_sandbox.messages] == ["+447483866525"]
```

The sandbox serves from a thread of its own, so the same fixture works for blocking
tests and for async tests on any event loop. It needs pytest, and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sandbox import Sandbox

__all__ = ["voipnumber_env", "voipnumber_sandbox"]


@pytest.fixture
def voipnumber_sandbox() -> Iterator[Sandbox]:
    """A running `Sandbox` with the demo accounts, fresh for each test."""
    with Sandbox().serve_in_thread() as sandbox:
        yield sandbox


@pytest.fixture
def voipnumber_env(voipnumber_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, with `VOIPNUMBER_*` set so that `AsyncVoipNumber()` talks to it."""
    for name, value in voipnumber_sandbox.env().items():
        monkeypatch.setenv(name, value)
    return voipnumber_sandbox
