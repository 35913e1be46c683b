"""The sandbox server: the wire contract implemented over aiohttp.web, in memory."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Literal, TypedDict

import aiohttp
import attrs
from aiohttp import web

from .._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL, LOGGER_NAME
from .._models import InboundMessage, MessageStatus, MessageType, SentMessage
from .._validation import E164
from .._wire import (
    ERROR_DESCRIPTIONS,
    ERROR_HTTP_STATUS,
    HEADER_ACCOUNT_ID,
    HEADER_AUTHORIZATION,
    HEADER_IDEMPOTENCY_KEY,
    HEADER_REQUEST_ID,
    JSON_CONTENT_TYPE,
    SEND_SMS_PATH,
    WEBHOOK_HEADERS,
    bearer_token,
    encode_error,
    encode_inbound,
    encode_send_success,
)
from ._faults import Fault, FaultQueue

__all__ = [
    "DEMO_ACCOUNT_ID",
    "DEMO_API_TOKEN",
    "DEMO_NUMBER",
    "INBOUND_TRIGGER_PATH",
    "OTHER_ACCOUNT_NUMBER",
    "AcceptedMessage",
    "ClientSettings",
    "Delivery",
    "RecordedRequest",
    "Sandbox",
    "SandboxAccount",
]

logger = logging.getLogger(f"{LOGGER_NAME}.sandbox")

DEMO_ACCOUNT_ID = "demo-account"
DEMO_API_TOKEN = "demo-token"  # noqa: S105 - a public sandbox credential
DEMO_NUMBER = "+447445459147"
OTHER_ACCOUNT_NUMBER = "+447700900999"
"""A number that exists in the sandbox but belongs to another account."""


def _as_tuple(numbers: Iterable[str]) -> tuple[str, ...]:
    return tuple(numbers)


class ClientSettings(TypedDict):
    """The keyword arguments that point a client at a sandbox."""

    account_id: str
    api_token: str
    base_url: str


@attrs.frozen(kw_only=True)
class SandboxAccount:
    """An account the sandbox knows: its credentials and the numbers it may send from."""

    account_id: str
    api_token: str = attrs.field(repr=False)
    numbers: tuple[str, ...] = attrs.field(converter=_as_tuple, default=())


def _default_accounts() -> list[SandboxAccount]:
    return [
        SandboxAccount(
            account_id=DEMO_ACCOUNT_ID,
            api_token=DEMO_API_TOKEN,
            numbers=(DEMO_NUMBER, "+447445459148"),
        ),
        SandboxAccount(
            account_id="other-account",
            api_token="other-token",  # noqa: S106 - a sandbox credential
            numbers=(OTHER_ACCOUNT_NUMBER,),
        ),
    ]


@attrs.define(kw_only=True)
class RecordedRequest:
    """A request as the sandbox received it, and what became of it.

    Attributes:
        status: The HTTP status answered, or `None` when the connection was dropped.
        replayed: The answer was a replay of an earlier request with the same key.
        fault: The fault that hit this request, if any.
    """

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes
    received_at: float
    idempotency_key: str | None
    status: int | None = None
    replayed: bool = False
    fault: Fault | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@attrs.frozen(kw_only=True)
class AcceptedMessage:
    """A message the sandbox accepted for sending: what a real service would send."""

    id: str
    account_id: str
    from_: str
    to: str
    body: str
    idempotency_key: str | None
    timestamp_s: int


#: Where the sandbox takes orders to deliver an inbound message (an extension of the
#: sandbox, not of the service): `POST {"to": ..., "from": ..., "body": ..., "type": ...}`.
INBOUND_TRIGGER_PATH = "/sandbox/inbound"


@attrs.frozen(kw_only=True)
class Delivery:
    """One POST of an inbound message to a webhook, and how the receiver answered.

    Attributes:
        message: What was delivered.
        url: Where it was posted.
        attempt: 1 for the first delivery of this `mdr_id`, 2 for the first redelivery...
        status: The HTTP status the receiver answered, or `None` if it could not be
            reached (then `error` says why).
        answer: The body of the receiver's answer.
    """

    message: InboundMessage
    url: str
    attempt: int
    status: int | None
    answer: bytes = b""
    error: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the receiver answered 2xx, as the service counts it."""
        return self.status is not None and 200 <= self.status < 300


@attrs.frozen
class _StoredAnswer:
    fingerprint: bytes
    status: int
    body: bytes


class Sandbox:
    """An in-memory VoIP Number service that implements the wire contract.

    It knows the accounts it is given (by default a demo account, `DEMO_ACCOUNT_ID` /
    `DEMO_API_TOKEN`, owning `DEMO_NUMBER`, and another account owning
    `OTHER_ACCOUNT_NUMBER`), answers every documented error code, replays the first
    answer for a repeated `Idempotency-Key`, and misbehaves on demand (`inject`).
    It records every request (`requests`) and every message it accepted (`messages`).

    Run it on the current event loop with `async with Sandbox() as sandbox:`, or in a
    thread of its own, for blocking code and other loops, with
    `with Sandbox().serve_in_thread() as sandbox:`.

    Args:
        accounts: The accounts it knows; default the demo accounts.
        envelope: `"single"` or `"nested"`: the success envelope it answers with.
        seed: Seeds the randomness of faults injected with a `rate`.
        record: Keep every request in `requests` (turn off for very long runs;
            `messages` and the counters are kept regardless).
        webhooks: The webhook URL of each number, for `deliver_inbound`.
    """

    def __init__(
        self,
        *,
        accounts: Iterable[SandboxAccount] | None = None,
        envelope: Literal["single", "nested"] = "single",
        seed: int | None = None,
        record: bool = True,
        webhooks: Mapping[str, str] | None = None,
    ) -> None:
        self.accounts = {
            account.account_id: account for account in (accounts or _default_accounts())
        }
        self._number_owners = {
            number: account.account_id
            for account in self.accounts.values()
            for number in account.numbers
        }
        self.envelope = envelope
        self.record = record
        self.requests: list[RecordedRequest] = []
        self.messages: list[AcceptedMessage] = []
        self.request_count = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.webhooks: dict[str, str] = dict(webhooks or {})
        self.deliveries: list[Delivery] = []
        self._faults = FaultQueue(seed)
        self._answers: dict[tuple[str, str], _StoredAnswer] = {}
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    # --- running ----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """The aiohttp application, to mount or serve yourself."""
        app = web.Application()
        app.router.add_post(SEND_SMS_PATH, self._handle_send)
        app.router.add_post(INBOUND_TRIGGER_PATH, self._handle_inbound_trigger)
        return app

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

    # --- faults and records -----------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each hits the next `fault.times` requests, in order."""
        self._faults.add(*faults)

    def clear_faults(self) -> None:
        """Drop every fault still queued."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults have hits left."""
        return len(self._faults)

    def reset(self) -> None:
        """Forget requests, messages, counters, faults and stored idempotent answers."""
        self.requests.clear()
        self.messages.clear()
        self.deliveries.clear()
        self.request_count = 0
        self.peak_in_flight = self.in_flight
        self._faults.clear()
        self._answers.clear()

    # --- inbound messages -------------------------------------------------------------

    async def deliver_inbound(
        self,
        to: str,
        body: str = "Hello from the sandbox",
        *,
        from_: str = "+447483866525",
        type: str = MessageType.SMS,
        mdr_id: str | None = None,
        extra: Mapping[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> Delivery:
        """POST an inbound message for number `to` to its webhook, as the service would.

        The delivery has the documented headers and body; how the receiver answered is
        returned and kept in `deliveries`. Callable from any event loop, the sandbox's
        own or another.

        Raises:
            KeyError: `to` has no webhook (set one in `webhooks`).
        """
        url = self.webhooks.get(to)
        if url is None:
            raise KeyError(f"no webhook for {to}: set sandbox.webhooks[{to!r}] = url")
        now = int(time.time())
        message = InboundMessage(
            status="received",
            from_=from_,
            to=to,
            type=type,
            body=body,
            mdr_timestamp_s=now,
            mdr_created=datetime.fromtimestamp(now, timezone.utc),
            mdr_id=mdr_id or str(uuid.uuid4()),
            extra=dict(extra or {}),
        )
        return await self._deliver(message, url, timeout)

    async def redeliver(self, delivery: Delivery, *, timeout: float = 10.0) -> Delivery:
        """Deliver the same message (same `mdr_id`) again.

        As the service does after a failed delivery or an answer it did not get.
        """
        return await self._deliver(delivery.message, delivery.url, timeout)

    async def _deliver(self, message: InboundMessage, url: str, timeout: float) -> Delivery:
        attempt = 1 + sum(d.message.mdr_id == message.mdr_id for d in self.deliveries)
        status: int | None = None
        answer, error = b"", None
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
                session.post(url, data=encode_inbound(message), headers=WEBHOOK_HEADERS) as reply,
            ):
                status, answer = reply.status, await reply.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as failure:
            error = f"{type(failure).__name__}: {failure}"
        delivery = Delivery(
            message=message, url=url, attempt=attempt, status=status, answer=answer, error=error
        )
        self.deliveries.append(delivery)
        logger.info("delivered %s to %s -> %s", message.mdr_id, message.to, status or error)
        return delivery

    async def _handle_inbound_trigger(self, request: web.Request) -> web.Response:
        try:
            order = await request.json()
            delivery = await self.deliver_inbound(
                str(order["to"]),
                str(order.get("body", "Hello from the sandbox")),
                from_=str(order.get("from", "+447483866525")),
                type=str(order.get("type", MessageType.SMS)),
                mdr_id=order.get("mdr_id"),
            )
        except (ValueError, KeyError, TypeError) as error:
            return web.json_response({"error": str(error)}, status=400)
        return web.json_response(
            {"mdr_id": delivery.message.mdr_id, "status": delivery.status,
             "attempt": delivery.attempt, "error": delivery.error}
        )  # fmt: skip

    def messages_by_key(self) -> dict[str | None, list[AcceptedMessage]]:
        """Accepted messages grouped by idempotency key: a key with two is a duplicate."""
        grouped: dict[str | None, list[AcceptedMessage]] = {}
        for message in self.messages:
            grouped.setdefault(message.idempotency_key, []).append(message)
        return grouped

    # --- the contract -----------------------------------------------------------------

    async def _handle_send(self, request: web.Request) -> web.StreamResponse:
        self.request_count += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        record: RecordedRequest | None = None
        try:
            body = await request.read()
            fault = self._faults.take()
            record = RecordedRequest(
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                body=body,
                received_at=time.time(),
                idempotency_key=request.headers.get(HEADER_IDEMPOTENCY_KEY),
                fault=fault,
            )
            if self.record:
                self.requests.append(record)
            if fault is not None and not fault.after_processing:
                answer = await self._apply(fault, request, record)
                if answer is not None:
                    return answer
            status, answer_body, record.replayed = self._process(request, body)
            if fault is not None and fault.after_processing:
                faulty = await self._apply(fault, request, record)
                if faulty is not None:
                    return faulty
            record.status = status
            return web.Response(
                status=status,
                body=answer_body,
                content_type=JSON_CONTENT_TYPE,
                headers={HEADER_REQUEST_ID: f"req_{uuid.uuid4().hex[:16]}"},
            )
        finally:
            self.in_flight -= 1
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "POST %s -> %s%s",
                    request.path,
                    "dropped" if record is None or record.status is None else record.status,
                    " (replayed)" if record is not None and record.replayed else "",
                )

    async def _apply(
        self, fault: Fault, request: web.Request, record: RecordedRequest
    ) -> web.StreamResponse | None:
        """Carry out `fault`; return the answer that replaces the normal one, if any."""
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.drop_connection:
            if request.transport is not None:
                request.transport.abort()
            # The transport is gone: this answer never leaves, and aiohttp logs nothing.
            raise web.HTTPInternalServerError
        if fault.status is None:
            return None
        record.status = fault.status
        headers = dict(fault.headers)
        return web.Response(
            status=fault.status,
            body=fault.body,
            headers={HEADER_REQUEST_ID: f"req_{uuid.uuid4().hex[:16]}", **headers},
        )

    def _process(self, request: web.Request, body: bytes) -> tuple[int, bytes, bool]:
        """`(status, body, replayed)` of the normal answer; accepts the message if valid."""
        account_id = request.headers.get(HEADER_ACCOUNT_ID, "").strip()
        if not account_id:
            return _error("USER_ACCOUNT_MISSING")
        token = bearer_token(request.headers.get(HEADER_AUTHORIZATION))
        if not token:
            return _error("API_TOKEN_MISSING")
        account = self.accounts.get(account_id)
        if account is None:
            return _error("USER_NOT_FOUND")
        if not hmac.compare_digest(token.encode(), account.api_token.encode()):
            return _error("API_TOKEN_INVALID")

        key = request.headers.get(HEADER_IDEMPOTENCY_KEY)
        if key is not None:
            stored = self._answers.get((account_id, key))
            if stored is not None:
                if stored.fingerprint != body:
                    return (
                        422,
                        encode_error(
                            "IDEMPOTENCY_KEY_REUSED",
                            "Idempotency-Key was already used for a different request",
                        ),
                        False,
                    )
                return stored.status, stored.body, True

        fields = _message_fields(body)
        if fields is None:
            return _error("MESSAGE_INVALID")
        from_, to, text = fields
        owner = self._number_owners.get(from_)
        if owner is None:
            return _error("NUMBER_NOT_FOUND")
        if owner != account_id:
            return _error("NUMBER_OWNERSHIP")

        now = int(time.time())
        message = SentMessage(
            id=str(uuid.uuid4()),
            status=MessageStatus.QUEUED,
            body=text,
            timestamp_s=now,
            created=datetime.fromtimestamp(now, timezone.utc),
        )
        self.messages.append(
            AcceptedMessage(
                id=message.id,
                account_id=account_id,
                from_=from_,
                to=to,
                body=text,
                idempotency_key=key,
                timestamp_s=now,
            )
        )
        answer = encode_send_success(message, nested=self.envelope == "nested")
        if key is not None:
            self._answers[(account_id, key)] = _StoredAnswer(body, 200, answer)
        return 200, answer, False


def _error(code: str) -> tuple[int, bytes, bool]:
    return ERROR_HTTP_STATUS[code], encode_error(code, ERROR_DESCRIPTIONS[code]), False


def _message_fields(body: bytes) -> tuple[str, str, str] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    from_, to, text = payload.get("from"), payload.get("to"), payload.get("body")
    if not (isinstance(from_, str) and isinstance(to, str) and isinstance(text, str) and text):
        return None
    if E164.fullmatch(from_) is None or E164.fullmatch(to) is None:
        return None
    return from_, to, text
