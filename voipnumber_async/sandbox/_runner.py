"""`Sandbox`: a sandbox's state served over HTTP, on this event loop or in a thread.

Starting and stopping the server, its address, the settings that point a client at it,
and inbound deliveries on demand. What it knows and counts is `SandboxState`'s; how it
answers is `_app`'s.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypedDict

from aiohttp import web

from .._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL, LOGGER_NAME
from .._models import MessageType
from ._accounts import DEMO_ACCOUNT_ID
from ._app import make_app
from ._delivery import deliver, inbound_message
from ._inbound import DEFAULT_INBOUND_BODY, DEFAULT_INBOUND_FROM
from ._records import Delivery
from ._state import SandboxState

__all__ = ["ClientSettings", "Sandbox"]

logger = logging.getLogger(f"{LOGGER_NAME}.sandbox")


class ClientSettings(TypedDict):
    """The keyword arguments that point a client at a sandbox."""

    account_id: str
    api_token: str
    base_url: str


class Sandbox(SandboxState):
    """An in-memory VoIP Number service that implements the wire contract.

    It knows the accounts it is given (by default a demo account, `DEMO_ACCOUNT_ID` /
    `DEMO_API_TOKEN`, owning `DEMO_NUMBER`, and another account owning
    `OTHER_ACCOUNT_NUMBER`), answers every documented error code, replays the first
    answer for a repeated `Idempotency-Key`, and misbehaves on demand (`inject`).
    It records requests (`requests`), the messages it accepted (`messages`) and the
    inbound deliveries it made (`deliveries`): all of them, or the most recent `keep`;
    and it counts everything, however many it keeps (`request_count`, `accepted_count`,
    `status_counts`, ...).

    Run it on the current event loop with `async with Sandbox() as sandbox:`, or in a
    thread of its own, for blocking code and other loops, with
    `with Sandbox().serve_in_thread() as sandbox:`.

    Args:
        accounts: The accounts it knows; default the demo accounts.
        envelope: `"single"` or `"nested"`: the success envelope it answers with.
        seed: Seeds the randomness of faults injected with a `rate`.
        record: Keep requests in `requests` (`messages`, `deliveries` and the counts
            are kept regardless).
        webhooks: The webhook URL of each number, for `deliver_inbound`.
        keep: How many of the most recent requests, messages and deliveries it keeps
            (each); `None` keeps them all. For long runs: the counts stay exact.
        keep_keys: How many of the most recent idempotency keys (and inbound `mdr_id`s)
            it remembers; a key older than that is forgotten, as a real service forgets
            them after a while, and sends again. `None` remembers them all.
        rate_limit: Sends a second each account may make (a smooth limit with 0.1 s of
            burst) before it is answered 429 `RATE_LIMITED` with a `Retry-After` of at
            least 1 s, unprocessed; an account's own `SandboxAccount.rate_limit` wins.
            `None`: no limit.

    Raises:
        ValueError: `keep` or `keep_keys` is negative, or `rate_limit` not positive.
    """

    # Not serving until `start`: class defaults, so that the state's __init__ is the
    # only one and its signature is the class's.
    _runner: web.AppRunner | None = None
    _host: str = "127.0.0.1"
    _port: int | None = None

    # --- running ----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application, to mount or serve yourself."""
        return make_app(self)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve on `host:port` (port 0: a free one) on the running event loop."""
        if self._runner is not None:
            raise RuntimeError("this sandbox is already running")
        runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        self._host = host
        self._port = runner.addresses[0][1]
        logger.info("sandbox serving at %s", self.base_url)

    async def close(self) -> None:
        """Stop serving. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @contextmanager
    def serve_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[Sandbox]:
        """Serve from a thread with its own event loop for the duration of a `with` block.

        For blocking code, or to test a client running on another loop. Injecting
        faults and reading the records from the calling thread is safe.
        """
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start(host, port))
            except BaseException as error:
                failure.append(error)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        thread = threading.Thread(target=serve, name="voipnumber-sandbox", daemon=True)
        thread.start()
        started.wait()
        if failure:
            thread.join()
            loop.close()
            raise failure[0]
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    @property
    def port(self) -> int:
        """The port it serves on."""
        if self._port is None:
            raise RuntimeError("the sandbox is not running: start it first")
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give a client as `base_url`."""
        return f"http://{self._host}:{self.port}"

    def client_settings(self, account_id: str = DEMO_ACCOUNT_ID) -> ClientSettings:
        """Keyword arguments for a client of `account_id`: `AsyncVoipNumber(**settings)`."""
        return {
            "account_id": account_id,
            "api_token": self.accounts[account_id].api_token,
            "base_url": self.base_url,
        }

    def env(self, account_id: str = DEMO_ACCOUNT_ID) -> dict[str, str]:
        """The environment variables a client reads, pointing at this sandbox."""
        settings = self.client_settings(account_id)
        return {
            ENV_ACCOUNT_ID: settings["account_id"],
            ENV_API_TOKEN: settings["api_token"],
            ENV_BASE_URL: settings["base_url"],
        }

    # --- inbound messages -------------------------------------------------------------

    async def deliver_inbound(
        self,
        to: str,
        body: str = DEFAULT_INBOUND_BODY,
        *,
        from_: str = DEFAULT_INBOUND_FROM,
        type: str = MessageType.SMS,
        mdr_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Delivery:
        """POST an inbound message for number `to` to its webhook, as the service would.

        The delivery has the documented headers and body; how the receiver answered is
        returned and kept in `deliveries`. Callable from any event loop, the sandbox's
        own or another. An `mdr_id` already delivered counts as a further attempt.

        Raises:
            KeyError: `to` has no webhook (set one in `webhooks`).
        """
        url = self.webhooks.get(to)
        if url is None:
            raise KeyError(f"no webhook for {to}: set sandbox.webhooks[{to!r}] = url")
        message = inbound_message(to, body, from_=from_, type=type, mdr_id=mdr_id, extra=extra)
        return await deliver(self, message, url, timeout)

    async def redeliver(self, delivery: Delivery, *, timeout: float = 10.0) -> Delivery:
        """Deliver the same message (same `mdr_id`) again.

        As the service does after a failed delivery or an answer it did not get.
        """
        return await deliver(self, delivery.message, delivery.url, timeout)
