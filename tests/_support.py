"""Constants and helpers shared by the tests (importable: tests/ is on pythonpath)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from voipnumber_async import RetryPolicy
from voipnumber_async.sandbox import DEMO_NUMBER

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parents[1]

FROM = DEMO_NUMBER
TO = "+447483866525"

#: The default policy's decisions, with waits short enough for a test suite.
FAST_RETRIES = RetryPolicy(initial_backoff=0.001, max_backoff=0.005)


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()
