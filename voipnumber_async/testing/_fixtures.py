"""The pytest fixtures of `voipnumber_async.testing`: the embedded sandbox, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..sandbox import Sandbox

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
