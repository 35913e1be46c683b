from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from _redis import RedisServer, redis_server_binary
from _support import FAST_RETRIES

import voipnumber_async
from voipnumber_async import AsyncVoipNumber
from voipnumber_async.redis._local import NO_REDIS_SERVER
from voipnumber_async.sandbox import Sandbox

# _no_skips_in_ci: in CI (CI=true) a skipped test fails; pytester tests that plugin.
pytest_plugins = ["voipnumber_async.testing", "_no_skips_in_ci", "pytester"]


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("VOIPNUMBER_TESTS_REQUIRE_INSTALLED"):
        # nox installs the built wheel; importing the source tree would test the wrong thing.
        package = Path(voipnumber_async.__file__).resolve()
        if "site-packages" not in package.parts:
            raise pytest.UsageError(f"tests imported the source tree ({package}), not the wheel")


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's real VOIPNUMBER_* variables must never leak into a test."""
    for name in ("VOIPNUMBER_ACCOUNT_ID", "VOIPNUMBER_API_TOKEN", "VOIPNUMBER_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox on the test's own event loop."""
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[AsyncVoipNumber]:
    """A client of the sandbox's demo account, with fast retries."""
    async with AsyncVoipNumber(**sandbox.client_settings(), retry=FAST_RETRIES) as running:
        yield running


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the session (not durable); see `redis_url`."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(NO_REDIS_SERVER)
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A durable redis-server of this test's own, for tests that kill or restart it."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(NO_REDIS_SERVER)
    server = RedisServer(binary, tmp_path, durable=True)
    server.start()
    yield server
    server.stop()
