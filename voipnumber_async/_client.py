"""`AsyncVoipNumber`, the coroutine client, and its resources (`client.sms`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable
from types import TracebackType
from typing import Final, NoReturn

import attrs
import yarl

from ._aiohttp import AiohttpTransport
from ._bulk import DEFAULT_CONCURRENCY, AsyncSendMany, Journal, MessageLike
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    ENV_ACCOUNT_ID,
    ENV_API_TOKEN,
    ENV_BASE_URL,
    Timeout,
)
from ._errors import ConfigurationError
from ._models import SentMessage
from ._rate import LocalPacer, Pacer
from ._retry import RetryPolicy
from ._sender import Connections, Sender
from ._transport import AsyncTransport
from ._validation import check_body, check_idempotency_key, check_number
from ._wire.requests import (
    HEADER_IDEMPOTENCY_KEY,
    SEND_SMS_PATH,
    base_headers,
    encode_send_request,
    new_idempotency_key,
)

__all__ = ["NOT_GIVEN", "AsyncSms", "AsyncVoipNumber", "NotGiven"]


class NotGiven:
    """The type of `NOT_GIVEN`: "leave this option as it is", distinct from `None`."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN: Final = NotGiven()


class _Credentials:
    """The account id and the API token of a client and its copies.

    Shared, so that a rotated token reaches all of them. The token is never shown.
    """

    __slots__ = ("_headers", "account_id")

    def __init__(self, account_id: str, api_token: str) -> None:
        self.account_id = account_id
        self._headers = base_headers(account_id, api_token)

    def rotate(self, api_token: str) -> None:
        # One assignment, so that a request being built sees the old or the new headers,
        # never a mix.
        self._headers = base_headers(self.account_id, api_token)

    def headers_with(self, idempotency_key: str) -> dict[str, str]:
        """Every header of a send: built in the call that sends, never kept in a local."""
        return {**self._headers, HEADER_IDEMPOTENCY_KEY: idempotency_key}

    def __repr__(self) -> str:
        return f"_Credentials(account_id={self.account_id!r}, api_token=<redacted>)"

    def __reduce__(self) -> NoReturn:
        raise TypeError("voipnumber credentials cannot be pickled")


def _credential_problem(name: str, value: object, source: str) -> ConfigurationError | None:
    """The error for a credential that will not do, said without showing it; else None.

    Returned, not raised: the caller drops its reference to the token before raising,
    so that no frame the error passes through holds the token in its locals.
    """
    message = None
    if not isinstance(value, str):
        message = f"{name} must be a str, got {type(value).__name__}"
    elif not value:
        message = (
            f"no {_CREDENTIAL_NAMES[name]}: {source} "
            "(it is on the Settings page of your VoIP Number account)"
        )
    elif value != value.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        # A header value cannot hold CR, LF or other control characters: every send
        # would fail in aiohttp. Usually a newline pasted or read along with the value.
        message = (
            f"{name} has spaces at its ends or control characters in it (a newline?): "
            f"copy it again from Settings ({source})"
        )
    elif not value.isascii():
        message = f"{name} has characters that are not ASCII in it: copy it again ({source})"
    return None if message is None else ConfigurationError(message, field=name)


_CREDENTIAL_NAMES: Final = {"account_id": "account id", "api_token": "API token"}


def _setting(value: str | None, env_var: str) -> str | None:
    if value is not None:
        return value
    return os.environ.get(env_var) or None


def _check_base_url(value: str) -> str:
    url = yarl.URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {value!r} "
            f"(from base_url= or {ENV_BASE_URL})",
            field="base_url",
        )
    return value.rstrip("/")


class AsyncVoipNumber:
    """The VoIP Number client for asyncio code.

    ```py
    async with AsyncVoipNumber() as client:          # credentials from the environment
        message = await client.sms.send("+447445459147", "+447483866525", "Thank you")
    ```

    One client holds one aiohttp session, created on first use and reused for its
    connection pool: create one client per process and event loop, and close it with
    `async with` or `aclose()`. It is safe to share between tasks.

    Args:
        account_id: The account id from Settings; default `$VOIPNUMBER_ACCOUNT_ID`.
        api_token: The API token from Settings; default `$VOIPNUMBER_API_TOKEN`.
        base_url: The API's address; default `$VOIPNUMBER_BASE_URL`, else
            `https://api.voipnumber.net`.
        timeout: Per attempt: seconds in all, or a `Timeout` with separate limits.
        max_retries: Retries after a failed first attempt (0 turns them off). Overrides
            `retry.max_retries` when it is not the default.
        retry: How failures are retried; see `RetryPolicy`.
        max_connections: The size of the connection pool.
        pacer: When each request may start; by default a `LocalPacer` without a rate,
            which pauses every request of the client for a 429's `Retry-After`. Pass
            one `LocalPacer(rate=...)` to cap all sends of this client (copies share
            it), or a shared one to pace several clients together.
        transport: What carries each request: any `AsyncTransport` (one async method,
            `handle_async_request`). By default an `AiohttpTransport`; in tests,
            `voipnumber_async.testing.MockTransport`. Closing the client closes it.
        telemetry_phone_numbers: Put the sending and receiving numbers on each send's
            OpenTelemetry span (`voipnumber.from`, `voipnumber.to`). Off by default:
            they are personal data, and traces often go to a third party. Without an
            OpenTelemetry SDK configured, nothing is recorded either way.

    Raises:
        ConfigurationError: A credential is missing, or a setting is invalid.
    """

    sms: AsyncSms
    """Sending SMS."""

    def __init__(
        self,
        account_id: str | None = None,
        api_token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry: RetryPolicy | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pacer: Pacer | None = None,
        transport: AsyncTransport | None = None,
        telemetry_phone_numbers: bool = False,
    ) -> None:
        account_id = _setting(account_id, ENV_ACCOUNT_ID)
        api_token = _setting(api_token, ENV_API_TOKEN)
        problem = _credential_problem(
            "account_id", account_id or "", f"pass account_id= or set {ENV_ACCOUNT_ID}"
        ) or _credential_problem(
            "api_token", api_token or "", f"pass api_token= or set {ENV_API_TOKEN}"
        )
        if problem is not None or account_id is None or api_token is None:
            api_token = None  # the frame the error passes through keeps no token
            raise problem or ConfigurationError("no credentials")
        self._credentials = _Credentials(account_id, api_token)
        api_token = None  # from here on, only the credentials hold it
        if max_connections < 1:
            raise ConfigurationError(
                f"max_connections must be at least 1, got {max_connections}",
                field="max_connections",
            )
        if pacer is not None and not isinstance(pacer, Pacer):
            raise ConfigurationError(
                f"pacer must be a Pacer (such as LocalPacer), got {type(pacer).__name__}",
                field="pacer",
            )
        if transport is not None and not isinstance(transport, AsyncTransport):
            raise ConfigurationError(
                "transport must have an async handle_async_request(request) method (an "
                f"AsyncTransport such as AiohttpTransport), got {type(transport).__name__}",
                field="transport",
            )
        policy = retry if retry is not None else RetryPolicy()
        if retry is None or max_retries != DEFAULT_MAX_RETRIES:
            policy = _with_max_retries(policy, max_retries)
        self._base_url = _check_base_url(_setting(base_url, ENV_BASE_URL) or DEFAULT_BASE_URL)
        self._send_url = self._base_url + SEND_SMS_PATH
        self._transport: AsyncTransport = (
            AiohttpTransport(max_connections=max_connections) if transport is None else transport
        )
        self._connections = Connections(self._transport, max_connections=max_connections)
        self._pacer: Pacer = LocalPacer() if pacer is None else pacer
        self._owns_transport = True
        self._telemetry_phone_numbers = bool(telemetry_phone_numbers)
        self._configure(Timeout.coerce(timeout), policy)

    def _configure(self, timeout: Timeout, retry: RetryPolicy) -> None:
        if not isinstance(retry, RetryPolicy):
            raise ConfigurationError(
                f"retry must be a RetryPolicy, got {type(retry).__name__}", field="retry"
            )
        self._timeout = timeout
        self._retry = retry
        self._sender = Sender(
            url=self._send_url,
            credentials=self._credentials,
            connections=self._connections,
            pacer=self._pacer,
            timeout=timeout,
            retry=retry,
            account_id=self._credentials.account_id,
            telemetry_phone_numbers=self._telemetry_phone_numbers,
        )
        self.sms = AsyncSms(self)

    @property
    def account_id(self) -> str:
        """The account this client sends for."""
        return self._credentials.account_id

    @property
    def base_url(self) -> str:
        """The API's address, without a trailing slash."""
        return self._base_url

    @property
    def telemetry_phone_numbers(self) -> bool:
        """Whether each send's OpenTelemetry span names its numbers (see docs/telemetry.md)."""
        return self._telemetry_phone_numbers

    @property
    def timeout(self) -> Timeout:
        """The timeout of each attempt."""
        return self._timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        """How failures are retried."""
        return self._retry

    @property
    def closed(self) -> bool:
        """Whether `aclose()` was called (on this client, or on the one it was copied from)."""
        return self._connections.closed

    def rotate_api_token(self, api_token: str) -> None:
        """Use a new API token from now on, in this client and every copy of it.

        For a token regenerated on the Settings page; requests already under way
        finish with the old one.
        """
        problem = _credential_problem("api_token", api_token, "pass the new token")
        if problem is not None:
            del api_token  # the frame the error passes through keeps no token
            raise problem
        self._credentials.rotate(api_token)

    def with_options(
        self,
        *,
        timeout: float | Timeout | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
    ) -> AsyncVoipNumber:
        """A copy with other options that shares this client's connection pool and credentials.

        ```py
        patient = client.with_options(timeout=120, max_retries=5)
        ```

        Closing the copy does nothing; closing this client closes the pool for both.
        """
        policy = self._retry if isinstance(retry, NotGiven) else retry
        if not isinstance(max_retries, NotGiven):
            policy = _with_max_retries(policy, max_retries)
        copy = object.__new__(type(self))
        copy._credentials = self._credentials
        copy._base_url = self._base_url
        copy._send_url = self._send_url
        copy._transport = self._transport
        copy._connections = self._connections
        copy._pacer = self._pacer
        copy._owns_transport = False
        copy._telemetry_phone_numbers = self._telemetry_phone_numbers
        copy._configure(
            self._timeout if isinstance(timeout, NotGiven) else Timeout.coerce(timeout), policy
        )
        return copy

    async def aclose(self) -> None:
        """Close the connection pool. Safe to call twice; a no-op on a `with_options` copy."""
        if self._owns_transport:
            await self._connections.aclose()

    async def __aenter__(self) -> AsyncVoipNumber:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(account_id={self.account_id!r}, base_url={self._base_url!r}, "
            "api_token=<redacted>)"
        )

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} cannot be pickled: it holds a connection pool and "
            "credentials. Create a client where it is used."
        )


def _with_max_retries(policy: RetryPolicy, max_retries: int) -> RetryPolicy:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigurationError(
            f"max_retries must be a whole number >= 0, got {max_retries!r}", field="max_retries"
        )
    return attrs.evolve(policy, max_retries=max_retries)


class AsyncSms:
    """SMS operations: `client.sms`."""

    def __init__(self, client: AsyncVoipNumber) -> None:
        self._client = client

    async def send(
        self,
        from_: str,
        to: str,
        body: str,
        *,
        idempotency_key: str | None = None,
    ) -> SentMessage:
        """Send an SMS from a number on your account.

        ```py
        message = await client.sms.send("+447445459147", "+447483866525", "Thank you")
        message.id, message.status          # "feefcc83-...", "queued"
        ```

        Args:
            from_: The sending number, E.164 (`+447445459147`); must be on your account.
            to: The recipient, E.164.
            body: The text; longer texts go as several segments (`estimate_segments`).
            idempotency_key: The key that makes retries safe. A fresh one is made per
                call; pass your own to retry a message you sent before (for instance
                `error.idempotency_key` of an `OutcomeUnknownError`).

        Returns:
            The message as the service queued it.

        Raises:
            InvalidRequestError: A number is not E.164 or the body is empty; nothing was sent.
            AuthenticationError: The account id or token is wrong.
            NumberNotFoundError: `from_` does not exist on VoIP Number.
            NumberOwnershipError: `from_` is not on your account.
            MessageInvalidError: The service rejected the request as malformed.
            RateLimitError: Still rate limited after the retries.
            ServiceUnavailableError: Still unavailable after the retries.
            APIConnectionError: The service could not be reached; nothing was sent.
            OutcomeUnknownError: The message may or may not have been sent.
            UnexpectedResponseError: The answer could not be read.
        """
        from_ = check_number("from_", from_)
        to = check_number("to", to)
        body = check_body(body)
        key = (
            new_idempotency_key()
            if idempotency_key is None
            else check_idempotency_key(idempotency_key)
        )
        return await self._client._sender.send(
            encode_send_request(from_, to, body), key, from_=from_, to=to
        )

    def send_many(
        self,
        messages: Iterable[MessageLike] | AsyncIterable[MessageLike],
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rate_limit: float | Pacer | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        ordered: bool = False,
        resend_unknown: bool = False,
    ) -> AsyncSendMany:
        """Send many messages, `concurrency` at a time, and yield one result for each.

        ```py
        async with client.sms.send_many(messages, concurrency=100, rate_limit=200.0,
                                        journal="campaign.db") as results:
            async for result in results:
                result.index, result.message, result.sent, result.error
        print(results.summary)
        ```

        The input is read lazily, so memory stays flat whatever its length. A failure
        is a result, not an exception: `result.error` says why, and
        `result.error.may_have_been_sent` whether it may have gone out. Each message
        is retried under the client's `RetryPolicy`; a 429 pauses every worker for its
        `Retry-After`, then the pace slows and recovers.

        Args:
            messages: `OutgoingMessage`s, `(from_, to, body)` tuples, or dicts with
                `from_`, `to`, `body` (and optionally `idempotency_key`); an iterable
                or an async iterable.
            concurrency: Requests in flight at most.
            rate_limit: Messages per second at most, evenly spaced, under the client's
                own pacer; or a `Pacer` that paces this run instead of the client's
                (one shared by many processes, say); `None` for the client's pacer
                alone.
            journal: A SQLite file that records each message's key and outcome. Run
                the same call with the same file after a crash or Ctrl-C to send only
                what was not sent. Or a `Journal` (a `SqliteJournal`, one of your own):
                the run uses it and leaves it open.
            ordered: Yield results in input order (a bounded buffer holds early ones).
            resend_unknown: On resuming, send again the messages whose outcome is
                unknown, with their original idempotency key. Off by default: they are
                yielded as `OutcomeUnknownError`s to review.

        Returns:
            An async iterator of `SendResult`s, with a running `summary`.

        Raises:
            ConfigurationError: An argument is invalid (at the call).
            JournalMismatchError: The journal was written for another input (while
                iterating, before anything of that input is sent).
        """
        return AsyncSendMany(
            self._client._sender,
            messages,
            concurrency=concurrency,
            rate_limit=rate_limit,
            journal=journal,
            ordered=ordered,
            resend_unknown=resend_unknown,
        )
