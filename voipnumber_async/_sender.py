"""The one send path: a prepared request to a `SentMessage` or an error.

`client.sms.send` and `send_many` both come here. Each attempt goes through the same
steps, one module each:

```
pace (_rate: Pacer) -> a connection slot (_transport) -> POST (_transport)
    -> decode (_wire) -> decide (_retry: RetryPolicy, run by tenacity)
```

Every error leaves with the attempts made and the idempotency key they carried.
"""

from __future__ import annotations

import logging
import time

import aiohttp

from ._config import LOGGER_NAME
from ._errors import ClientClosedError, RateLimitError, VoipNumberError
from ._models import SentMessage
from ._rate import Pacer
from ._retry import RetryPolicy, retry_after_failure
from ._transport import HeaderSource, Transport, closed_while_waiting
from ._wire.answers import Answer, decode_send_answer

__all__ = ["SendWatch", "Sender", "Stopped", "closed_error"]

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


class Sender:
    """Sends one prepared request under a retry policy, pacing every attempt.

    One per client and per `with_options()` copy: copies share the transport, the
    credentials and the pacer, and differ in timeout and policy.
    """

    __slots__ = ("_credentials", "_pacer", "_retry", "_timeout", "_transport", "_url")

    def __init__(
        self,
        *,
        url: str,
        credentials: HeaderSource,
        transport: Transport,
        pacer: Pacer,
        timeout: aiohttp.ClientTimeout,
        retry: RetryPolicy,
    ) -> None:
        self._url = url
        self._credentials = credentials
        self._transport = transport
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
        return self._transport.closed

    async def send(
        self,
        payload: bytes,
        idempotency_key: str,
        *,
        pacer: Pacer | None = None,
        watch: SendWatch | None = None,
    ) -> SentMessage:
        """POST one message, retrying under the policy.

        Args:
            payload: The request's JSON body.
            idempotency_key: The key every attempt carries.
            pacer: The pacer to ask instead of the client's (a bulk run's own).
            watch: Told of every attempt, and stops the next one (a bulk run's worker).

        Raises:
            VoipNumberError: The send failed; `attempts` and `idempotency_key` say how.
        """
        if self._transport.closed:
            raise closed_error()
        policy = self._retry
        pace = self._pacer if pacer is None else pacer
        transport = self._transport
        attempts = 0
        started = time.monotonic()

        async def attempt() -> SentMessage:
            nonlocal attempts
            if watch is not None and watch.stopping:
                raise Stopped
            wait = pace.acquire(max_wait=policy.longest_wait_now(started))
            if wait is not None:
                await wait
            async with transport.slots:
                if transport.closed:
                    raise closed_while_waiting()
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
                answer = await self._post(payload, idempotency_key, watch)
            try:
                return decode_send_answer(answer)
            except VoipNumberError as error:
                if watch is not None:
                    watch.may_have_been_sent |= error.may_have_been_sent
                    watch.rate_limited += isinstance(error, RateLimitError)
                raise

        def before_retry(error: VoipNumberError, wait: float) -> None:
            # This request waits out a 429's Retry-After, so every request of the pacer
            # does: the others would only be refused too. (A 429 raised instead pauses
            # nothing: that caller decides when to try again.)
            if isinstance(error, RateLimitError):
                pace.rate_limited(error.retry_after)

        try:
            try:
                message = await attempt()
            except VoipNumberError as error:
                if policy.max_retries == 0 or not policy.should_retry(error):
                    raise
                message = await retry_after_failure(
                    attempt,
                    error,
                    policy,
                    started=started,
                    idempotency_key=idempotency_key,
                    attempts_made=lambda: attempts,
                    before_retry=before_retry,
                )
        except VoipNumberError as error:
            error.attempts = attempts
            error.idempotency_key = idempotency_key
            logger.debug("send failed after %d attempt(s): %r", attempts, error)
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "sent id=%s status=%s after %d attempt(s) in %.1f ms",
                message.id,
                message.status,
                attempts,
                (time.monotonic() - started) * 1000,
            )
        return message

    async def _post(self, payload: bytes, idempotency_key: str, watch: SendWatch | None) -> Answer:
        """One request, holding a connection slot; the watch knows it is on the wire."""
        if watch is not None:
            watch.on_wire = True
        try:
            return await self._transport.post(
                self._url, payload, self._credentials, idempotency_key, self._timeout
            )
        except BaseException as error:
            if watch is not None:
                # Cancelled on the wire (a stop past its drain) may have been sent too.
                watch.may_have_been_sent |= (
                    error.may_have_been_sent if isinstance(error, VoipNumberError) else True
                )
            raise
        finally:
            if watch is not None:
                watch.on_wire = False
