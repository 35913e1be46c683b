"""The sandbox server: the wire contract implemented over aiohttp.web, in memory."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Final, Literal, TypedDict

import aiohttp
import attrs
from aiohttp import hdrs, web

from .._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL, LOGGER_NAME
from .._models import InboundMessage, MessageStatus, MessageType, SentMessage
from .._validation import E164
from .._wire.answers import HEADER_REQUEST_ID, encode_error, encode_send_success, load_json
from .._wire.codes import ERROR_DESCRIPTIONS, ERROR_HTTP_STATUS
from .._wire.inbound import WEBHOOK_HEADERS, encode_inbound
from .._wire.requests import (
    HEADER_ACCOUNT_ID,
    HEADER_AUTHORIZATION,
    HEADER_IDEMPOTENCY_KEY,
    JSON_CONTENT_TYPE,
    SEND_SMS_PATH,
    bearer_token,
)
from ._faults import Fault, FaultQueue
from ._inbound import (
    DEFAULT_INBOUND_BODY,
    DEFAULT_INBOUND_FROM,
    InboundOrder,
    OrderError,
    check_redelivery,
    read_order,
)
from ._records import AcceptedMessage, Delivery, Recent, RecentMap, RecordedRequest

__all__ = [
    "DEFAULT_KEEP_KEYS",
    "DEMO_ACCOUNT_ID",
    "DEMO_API_TOKEN",
    "DEMO_NUMBER",
    "INBOUND_TRIGGER_PATH",
    "OTHER_ACCOUNT_NUMBER",
    "ClientSettings",
    "Sandbox",
    "SandboxAccount",
]

logger = logging.getLogger(f"{LOGGER_NAME}.sandbox")

DEMO_ACCOUNT_ID = "demo-account"
DEMO_API_TOKEN = "demo-token"  # noqa: S105 - a public sandbox credential
DEMO_NUMBER = "+447445459147"
OTHER_ACCOUNT_NUMBER = "+447700900999"
"""A number that exists in the sandbox but belongs to another account."""

#: How many of the most recent idempotency keys (and inbound `mdr_id`s) a sandbox
#: remembers by default: a million, about 190 MiB when full (`docs/sandbox.md`), so that a
#: bulk run of a million messages resumes against it with every key still known.
DEFAULT_KEEP_KEYS: Final = 1_000_000


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


#: Where the sandbox takes orders to deliver an inbound message (an extension of the
#: sandbox, not of the service): `POST {"to": ..., "from": ..., "body": ..., "type": ...}`,
#: or `{"mdr_id": ...}` to redeliver one (`_inbound.read_order` checks them).
INBOUND_TRIGGER_PATH = "/sandbox/inbound"


@attrs.define
class _Inbound:
    """The latest delivery of an `mdr_id`: what to redeliver, and how many tries so far."""

    message: InboundMessage
    url: str
    attempts: int


# A stored first answer, compact: a million keys must fit in a test machine's memory.
# The fingerprint of the request's body, the message's id, its timestamp; the answer is
# rebuilt from them and the repeated request's body (the same, or it is refused).
_STORED_ANSWER: Final = struct.Struct("<16s16sq")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _key_slot(account_id: str, key: str) -> bytes:
    """16 bytes that stand for an account's key: less than half the memory of the pair."""
    return _digest(_header_bytes(f"{account_id}\n{key}"))


class Sandbox:
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

    Raises:
        ValueError: `keep` or `keep_keys` is negative.
    """

    def __init__(
        self,
        *,
        accounts: Iterable[SandboxAccount] | None = None,
        envelope: Literal["single", "nested"] = "single",
        seed: int | None = None,
        record: bool = True,
        webhooks: Mapping[str, str] | None = None,
        keep: int | None = None,
        keep_keys: int | None = DEFAULT_KEEP_KEYS,
    ) -> None:
        _check_bound("keep", keep, "records of each kind kept")
        _check_bound("keep_keys", keep_keys, "keys remembered")
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
        self.keep = keep
        self.keep_keys = keep_keys
        self.webhooks: dict[str, str] = dict(webhooks or {})
        self.requests: Recent[RecordedRequest] = Recent(maxlen=keep)
        self.messages: Recent[AcceptedMessage] = Recent(maxlen=keep)
        self.deliveries: Recent[Delivery] = Recent(maxlen=keep)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._reset_counts()
        self._faults = FaultQueue(seed)
        self._answers: RecentMap[bytes, bytes] = RecentMap(keep_keys)
        self._inbound: RecentMap[str, _Inbound] = RecentMap(keep_keys)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    def _reset_counts(self) -> None:
        #: Requests to send a message, answered or not.
        self.request_count = 0
        #: Messages accepted: what a real service would have sent.
        self.accepted_count = 0
        #: Requests answered with the stored first answer of their idempotency key.
        self.replayed_count = 0
        #: Inbound deliveries made, redeliveries included.
        self.delivery_count = 0
        #: Requests by the HTTP status answered; `None` counts dropped connections.
        self.status_counts: Counter[int | None] = Counter()
        #: The sandbox's own refusals by error code (`MESSAGE_INVALID`, ...).
        self.error_counts: Counter[str] = Counter()
        #: Requests hit by each injected fault.
        self.fault_counts: Counter[Fault] = Counter()

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

    @property
    def remembered_keys(self) -> int:
        """How many idempotency keys it remembers now (at most `keep_keys`)."""
        return len(self._answers)

    def reset(self) -> None:
        """Forget records, counts, faults, stored idempotent answers and `mdr_id`s."""
        self.requests.clear()
        self.messages.clear()
        self.deliveries.clear()
        self._reset_counts()
        self.peak_in_flight = self.in_flight
        self._faults.clear()
        self._answers.clear()
        self._inbound.clear()

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
        message = _inbound_message(to, body, from_=from_, type=type, mdr_id=mdr_id, extra=extra)
        return await self._deliver(message, url, timeout)

    async def redeliver(self, delivery: Delivery, *, timeout: float = 10.0) -> Delivery:
        """Deliver the same message (same `mdr_id`) again.

        As the service does after a failed delivery or an answer it did not get.
        """
        return await self._deliver(delivery.message, delivery.url, timeout)

    async def _deliver(self, message: InboundMessage, url: str, timeout: float) -> Delivery:
        known = self._inbound.get(message.mdr_id)
        attempt = 1 if known is None else known.attempts + 1
        # Counted before the POST, so that a concurrent redelivery is the next attempt.
        self._inbound.put(message.mdr_id, _Inbound(message, url, attempt))
        self.delivery_count += 1
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
        """Deliver the message an order describes, or redeliver the one its `mdr_id` names."""
        try:
            order = read_order(request.headers.get(hdrs.CONTENT_TYPE, ""), await request.read())
            message, url = (
                self._new_order(order) if order.mdr_id is None else self._repeat_order(order)
            )
        except OrderError as refusal:
            return web.json_response({"error": refusal.message}, status=refusal.status)
        delivery = await self._deliver(message, url, timeout=10.0)
        return web.json_response(
            {"mdr_id": delivery.message.mdr_id, "status": delivery.status,
             "attempt": delivery.attempt, "error": delivery.error}
        )  # fmt: skip

    def _new_order(self, order: InboundOrder) -> tuple[InboundMessage, str]:
        assert order.to is not None  # read_order refuses a new message without one
        url = self.webhooks.get(order.to)
        if url is None:
            have = ", ".join(self.webhooks) or "none"
            raise OrderError(
                400,
                f"'to' {order.to} has no webhook (numbers with one: {have}): give it one "
                f"with voipnumber sandbox --webhook {order.to}=URL, or "
                f"Sandbox(webhooks={{{order.to!r}: url}})",
            )
        message = _inbound_message(
            order.to,
            DEFAULT_INBOUND_BODY if order.body is None else order.body,
            from_=order.from_ or DEFAULT_INBOUND_FROM,
            type=order.type or MessageType.SMS,
        )
        return message, url

    def _repeat_order(self, order: InboundOrder) -> tuple[InboundMessage, str]:
        assert order.mdr_id is not None
        known = self._inbound.get(order.mdr_id)
        if known is None:
            raise OrderError(
                404,
                f"no delivery has mdr_id {order.mdr_id!r} (the sandbox remembers the most "
                f"recent {self._inbound.size or 'all'} mdr_ids, until it stops or is reset): "
                "give the mdr_id of a delivery it answered, or leave 'mdr_id' out to "
                "deliver a new message",
            )
        check_redelivery(order, known.message)
        return known.message, known.url

    def messages_by_key(self) -> dict[str | None, list[AcceptedMessage]]:
        """Accepted messages grouped by idempotency key: a key with two is a duplicate.

        Of the messages kept (`keep`): a duplicate of a message no longer kept is not seen.
        """
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
            if fault is not None:
                self.fault_counts[fault] += 1
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
            self.status_counts[None if record is None else record.status] += 1
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
            return self._refuse("USER_ACCOUNT_MISSING")
        token = bearer_token(request.headers.get(HEADER_AUTHORIZATION))
        if not token:
            return self._refuse("API_TOKEN_MISSING")
        account = self.accounts.get(account_id)
        if account is None:
            return self._refuse("USER_NOT_FOUND")
        if not hmac.compare_digest(_header_bytes(token), _header_bytes(account.api_token)):
            return self._refuse("API_TOKEN_INVALID")

        fields = _message_fields(body)
        key = request.headers.get(HEADER_IDEMPOTENCY_KEY)
        slot = None if key is None else _key_slot(account_id, key)
        if slot is not None:
            stored = self._answers.get(slot)
            if stored is not None:
                fingerprint, message_id, timestamp_s = _STORED_ANSWER.unpack(stored)
                if fields is None or fingerprint != _digest(body):
                    return self._refuse("IDEMPOTENCY_KEY_REUSED")
                self.replayed_count += 1
                answer = self._success(str(uuid.UUID(bytes=message_id)), fields[2], timestamp_s)
                return 200, answer, True

        if fields is None:
            return self._refuse("MESSAGE_INVALID")
        from_, to, text = fields
        owner = self._number_owners.get(from_)
        if owner is None:
            return self._refuse("NUMBER_NOT_FOUND")
        if owner != account_id:
            return self._refuse("NUMBER_OWNERSHIP")

        new_id, now = uuid.uuid4(), int(time.time())
        self.accepted_count += 1
        self.messages.append(
            AcceptedMessage(
                id=str(new_id),
                account_id=account_id,
                from_=from_,
                to=to,
                body=text,
                idempotency_key=key,
                timestamp_s=now,
            )
        )
        if slot is not None:
            self._answers.put(slot, _STORED_ANSWER.pack(_digest(body), new_id.bytes, now))
        return 200, self._success(str(new_id), text, now), False

    def _success(self, message_id: str, text: str, timestamp_s: int) -> bytes:
        """The success answer for a message: the same bytes every time it is asked for."""
        message = SentMessage(
            id=message_id,
            status=MessageStatus.QUEUED,
            body=text,
            timestamp_s=timestamp_s,
            created=datetime.fromtimestamp(timestamp_s, timezone.utc),
        )
        return encode_send_success(message, nested=self.envelope == "nested")

    def _refuse(self, code: str) -> tuple[int, bytes, bool]:
        """`(status, body, replayed)` of the error answer for `code`, counted."""
        self.error_counts[code] += 1
        status, answer = _REFUSALS[code]
        return status, answer, False


def _inbound_message(
    to: str,
    body: str,
    *,
    from_: str,
    type: str,
    mdr_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> InboundMessage:
    """A message just received by the service, as its webhook delivery describes it."""
    now = int(time.time())
    return InboundMessage(
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


#: Every error the sandbox answers of its own, by code: `(HTTP status, body)`.
_REFUSALS: Final[Mapping[str, tuple[int, bytes]]] = {
    **{
        code: (ERROR_HTTP_STATUS[code], encode_error(code, description))
        for code, description in ERROR_DESCRIPTIONS.items()
    },
    "IDEMPOTENCY_KEY_REUSED": (
        422,
        encode_error(
            "IDEMPOTENCY_KEY_REUSED", "Idempotency-Key was already used for a different request"
        ),
    ),
}


def _check_bound(name: str, value: int | None, what: str) -> None:
    if value is not None and (not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an int >= 0 ({what}) or None (all), got {value!r}")


def _header_bytes(value: str) -> bytes:
    # aiohttp decodes header values with surrogateescape: a byte that is not UTF-8 in a
    # token must compare as unequal, not fail to encode (a 500).
    return value.encode("utf-8", "surrogateescape")


def _message_fields(body: bytes) -> tuple[str, str, str] | None:
    try:
        payload = load_json(body)
    except ValueError:  # not JSON, not UTF-8, or nested too deeply
        return None
    if not isinstance(payload, dict):
        return None
    from_, to, text = payload.get("from"), payload.get("to"), payload.get("body")
    if not (isinstance(from_, str) and isinstance(to, str) and isinstance(text, str) and text):
        return None
    if E164.fullmatch(from_) is None or E164.fullmatch(to) is None:
        return None
    return from_, to, text
