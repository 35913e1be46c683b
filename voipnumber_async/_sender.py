"""The one send path: a prepared request to a `SentMessage` or an error.

`client.sms.send` and `send_many` both come here. Each attempt goes through the same
steps, one module each:

```
pace (_rate: Pacer) -> a connection slot (Connections, here)
    -> send (_transport: AsyncTransport; AiohttpTransport in _aiohttp by default)
    -> decode (_wire) -> decide (_retry: RetryPolicy.next_wait)
```

Every error leaves with the attempts made and the idempotency key they carried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import NoReturn, Protocol

from ._config import LOGGER_NAME, MAX_ANSWER_BYTES, Timeout
from ._errors import (
    ClientClosedError,
    OutcomeUnknownError,
    RateLimitError,
    VoipNumberError,
)
from ._models import SentMessage
from ._rate import Pacer
from ._retry import RetryPolicy, announce_retry
from ._telemetry import SendTelemetry, start_send
from ._transport import AsyncTransport, TransportRequest, TransportResponse
from ._wire.answers import answer_too_large, decode_send_answer

__all__ = ["Connections", "HeaderSource", "SendWatch", "Sender", "Stopped", "closed_error"]

logger = logging.getLogger(LOGGER_NAME)


class SendWatch:
    """What a bulk run sees of one worker's send while it is under way.

    Attributes:
        on_wire: A request holds a connection now: it may be sent, so a stop lets it
            finish. A send waiting for its turn, a backoff or a connection has sent
            nothing and can be stopped at once.
        may_have_been_sent: An earlier attempt of this send may have been processed.
        stopping: Set by a stopping run: no further attempt starts.
        attempts: Requests made by sends watched with this object.
        rate_limited: 429s answered to them.
    """

    __slots__ = ("attempts", "may_have_been_sent", "on_wire", "rate_limited", "stopping")

    def __init__(self) -> None:
        self.on_wire = False
        self.may_have_been_sent = False
        self.stopping = False
        self.attempts = 0
        self.rate_limited = 0


class Stopped(Exception):
    """Raised out of `Sender.send` when its watch said stop before an attempt was made.

    Not a `VoipNumberError`, so no policy retries it; the run that stopped turns it
    into the message's result.
    """


def closed_error() -> ClientClosedError:
    """The error of a send on a closed client."""
    return ClientClosedError(
        "this voipnumber client is closed; create a new one, or use it only "
        "inside its `with` / `async with` block"
    )


class HeaderSource(Protocol):
    """What builds a request's headers: the client's credentials, whose repr hides the token."""

    def headers_with(self, idempotency_key: str) -> Mapping[str, str]:
        """Every header of a send, with its `Idempotency-Key`."""
        ...


class Connections:
    """A client's transport and its share of it: `max_connections` requests at once.

    Shared by a client and its `with_options()` copies. Requests beyond the limit queue
    for one of its slots before their attempt's timeout starts: otherwise a burst larger
    than the pool would spend its `connect` limit waiting and fail without ever being
    sent. A request that holds a slot is on the wire; one waiting for a slot has sent
    nothing.
    """

    __slots__ = ("_limit", "_loop", "_slots", "closed", "transport")

    def __init__(self, transport: AsyncTransport, *, max_connections: int) -> None:
        self.transport = transport
        self.closed = False
        self._limit = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def slots(self) -> asyncio.Semaphore:
        """Held while a request is in the transport: `async with connections.slots:`."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A semaphore belongs to the loop it first waited on: a new loop (a forked
            # child's, a test's) gets fresh slots.
            self._loop = loop
            self._slots = asyncio.Semaphore(self._limit)
        return self._slots

    async def aclose(self) -> None:
        """Refuse new requests, and close the transport if it can be closed."""
        self.closed = True
        close = getattr(self.transport, "aclose", None)
        if close is not None:
            await close()


class Sender:
    """Sends one prepared request under a retry policy, pacing every attempt.

    One per client and per `with_options()` copy: copies share the connections, the
    credentials and the pacer, and differ in timeout and policy.
    """

    __slots__ = (
        "_account_id",
        "_connections",
        "_credentials",
        "_numbers_in_telemetry",
        "_pacer",
        "_retry",
        "_timeout",
        "_url",
    )

    def __init__(
        self,
        *,
        url: str,
        credentials: HeaderSource,
        connections: Connections,
        pacer: Pacer,
        timeout: Timeout,
        retry: RetryPolicy,
        account_id: str = "",
        telemetry_phone_numbers: bool = False,
    ) -> None:
        self._url = url
        self._account_id = account_id
        self._numbers_in_telemetry = telemetry_phone_numbers
        self._credentials = credentials
        self._connections = connections
        self._pacer = pacer
        self._timeout = timeout
        self._retry = retry

    @property
    def pacer(self) -> Pacer:
        """The client's pacer, which every attempt asks for a turn."""
        return self._pacer

    @property
    def closed(self) -> bool:
        """Whether the client was closed."""
        return self._connections.closed

    @property
    def account_id(self) -> str:
        """The account the sends are for, as telemetry names it."""
        return self._account_id

    async def send(
        self,
        payload: bytes,
        idempotency_key: str,
        *,
        pacer: Pacer | None = None,
        watch: SendWatch | None = None,
        from_: str | None = None,
        to: str | None = None,
    ) -> SentMessage:
        """POST one message, retrying as the policy decides.

        With OpenTelemetry configured, the send is one `voipnumber.sms.send` span and
        its measurements (`_telemetry`); without, it costs one check.

        Args:
            payload: The request's JSON body.
            idempotency_key: The key every attempt carries.
            pacer: The pacer to ask instead of the client's (a bulk run's own).
            watch: Told of every attempt, and stops the next one (a bulk run's worker).
            from_: The sending number, for telemetry if the client opted in to numbers.
            to: The recipient, likewise.

        Raises:
            VoipNumberError: The send failed; `attempts` and `idempotency_key` say how.
        """
        if self._connections.closed:
            raise closed_error()
        numbers = self._numbers_in_telemetry
        telemetry = start_send(
            self._account_id, from_ if numbers else None, to if numbers else None
        )
        if telemetry is None:
            return await self._attempts(payload, idempotency_key, pacer, watch, None)
        try:
            message = await self._attempts(payload, idempotency_key, pacer, watch, telemetry)
        except Stopped:
            telemetry.stopped()
            raise
        except BaseException as error:
            telemetry.failed(error)
            raise
        telemetry.sent()
        return message

    async def _attempts(
        self,
        payload: bytes,
        idempotency_key: str,
        pacer: Pacer | None,
        watch: SendWatch | None,
        telemetry: SendTelemetry | None,
    ) -> SentMessage:
        """The attempt loop of `send`: each attempt paced, sent, decoded, and decided on."""
        policy = self._retry
        pace = self._pacer if pacer is None else pacer
        connections = self._connections
        started = time.monotonic()
        tries = attempts = 0  # turns taken, and requests made in them
        earlier_may_have_been_sent = False
        failure: VoipNumberError | None = None
        while True:
            tries += 1
            try:
                if watch is not None and watch.stopping:
                    raise Stopped
                wait = pace.acquire(max_wait=policy.longest_wait_now(started))
                if wait is not None:
                    await wait
                async with connections.slots:
                    if connections.closed:
                        raise ClientClosedError.while_waiting()
                    if watch is not None:
                        if watch.stopping:
                            raise Stopped
                        watch.attempts += 1
                    attempts += 1
                    if logger.isEnabledFor(logging.DEBUG):
                        logger.debug(
                            "POST %s attempt %d (idempotency_key=%s)",
                            self._url,
                            attempts,
                            idempotency_key,
                        )
                    answer = await self._send_request(payload, idempotency_key, watch)
                if telemetry is not None:
                    telemetry.attempts = attempts
                    telemetry.http_status = answer.status
                message = _decode(answer, watch)
                break
            except VoipNumberError as error:
                delay = policy.next_wait(error, attempt=tries, elapsed=time.monotonic() - started)
                if delay is None:
                    failure = error
                    break
                earlier_may_have_been_sent |= error.may_have_been_sent
                if isinstance(error, RateLimitError):
                    # This request waits out a 429's Retry-After, so every request of the
                    # pacer does: the others would only be refused too. (A 429 raised
                    # instead pauses nothing: that caller decides when to try again.)
                    pace.rate_limited(error.retry_after)
                announce_retry(policy, error, attempt=attempts, wait=delay, key=idempotency_key)
                if telemetry is not None:
                    telemetry.attempts = attempts
                    telemetry.retry(error, delay)
                await asyncio.sleep(delay)
        if failure is not None:
            _raise_final(failure, attempts, idempotency_key, earlier_may_have_been_sent)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "sent id=%s status=%s after %d attempt(s) in %.1f ms",
                message.id,
                message.status,
                attempts,
                (time.monotonic() - started) * 1000,
            )
        return message

    async def _send_request(
        self, payload: bytes, idempotency_key: str, watch: SendWatch | None
    ) -> TransportResponse:
        """One request through the transport; the watch knows it is on the wire.

        The request is built in the call, so that no local of a frame an error passes
        through holds its headers (the token).
        """
        if watch is not None:
            watch.on_wire = True
        try:
            return await self._connections.transport.handle_async_request(
                TransportRequest(
                    "POST",
                    self._url,
                    headers=self._credentials.headers_with(idempotency_key),
                    body=payload,
                    timeout=self._timeout,
                )
            )
        except VoipNumberError as error:
            if watch is not None:
                watch.may_have_been_sent |= error.may_have_been_sent
            raise
        except BaseException:
            if watch is not None:
                # Cancelled on the wire (a stop past its drain), or a transport's bug:
                # it may have been sent too.
                watch.may_have_been_sent = True
            raise
        finally:
            if watch is not None:
                watch.on_wire = False


def _raise_final(
    failure: VoipNumberError, attempts: int, idempotency_key: str, earlier_may_have_been_sent: bool
) -> NoReturn:
    """Raise the error a send ends with, its attempts and key set."""
    if earlier_may_have_been_sent and not failure.may_have_been_sent:
        failure = _unknown_after_retries(failure)
    failure.attempts = attempts
    failure.idempotency_key = idempotency_key
    logger.debug("send failed after %d attempt(s): %r", attempts, failure)
    try:
        raise failure
    finally:
        # Raised outside the `except`, it should have no context; Python 3.10 still
        # links the error handled last in the coroutine (the transport's, whose frames
        # hold the request's headers).
        failure.__context__ = None


def _unknown_after_retries(last: VoipNumberError) -> OutcomeUnknownError:
    """The error a send ends with when an earlier attempt may have been processed.

    The last attempt surely failed, but the message's outcome is unknown all the same.
    """
    return OutcomeUnknownError(
        "an earlier attempt of this message may have been sent (its outcome was unknown, "
        "and it was retried with the same idempotency key); the last attempt failed: "
        f"{last.message}. Send it again only with its idempotency key",
        http_status=last.http_status,
        request_id=last.request_id,
    )


def _decode(answer: TransportResponse, watch: SendWatch | None) -> SentMessage:
    """The answer as a `SentMessage`, or the typed error it stands for (the watch told)."""
    try:
        if len(answer.body) > MAX_ANSWER_BYTES:
            raise answer_too_large(answer.status, answer.headers, MAX_ANSWER_BYTES)
        return decode_send_answer(answer)
    except VoipNumberError as error:
        if watch is not None:
            watch.may_have_been_sent |= error.may_have_been_sent
            watch.rate_limited += isinstance(error, RateLimitError)
        raise
