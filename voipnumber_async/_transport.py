"""The HTTP transport: the only owner of an `aiohttp.ClientSession` in the client.

It sends one request and returns the answer, or raises one of the SDK's errors. This is
the one place where aiohttp's exceptions are mapped to ours, by what they mean for the
message: nothing was sent (`APIConnectionError`), or it may have been
(`OutcomeUnknownError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
import weakref
from collections.abc import Mapping
from typing import Final, Protocol

import aiohttp
from aiohttp import hdrs

from ._config import MAX_ANSWER_BYTES, Timeout
from ._errors import (
    APIConnectionError,
    ClientClosedError,
    OutcomeUnknownError,
    VoipNumberError,
)
from ._wire.answers import Answer, answer_too_large


def client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    """The aiohttp timeout for one attempt.

    `connect` covers opening a connection (the wait for a pool slot happens before, in
    `Transport.post`), so that when it runs out we know nothing was sent.
    """
    return aiohttp.ClientTimeout(
        total=timeout.total, connect=timeout.connect, sock_read=timeout.read
    )


class Transport:
    """One lazily created aiohttp session, reused for its connection pool.

    Shared by a client and the copies `with_options()` makes of it; the client that
    created it closes it.

    Requests beyond `max_connections` queue for one of its `slots`, before their
    attempt's timeout starts: otherwise a burst larger than the pool would spend its
    `connect` limit waiting for a connection and fail without ever being sent. A request
    that holds a slot is on the wire; one waiting for a slot has sent nothing.
    """

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def opened(self) -> bool:
        """Whether a session was created and is still open."""
        return self._session is not None and not self._session.closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self.closed:
            # A request that waited (a pause, a retry, a connection) while the client was
            # closed: it must not open a new session that nothing would close.
            raise closed_while_waiting()
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # Each request passes its own timeout; the session must not add one.
                timeout=aiohttp.ClientTimeout(total=None),
                raise_for_status=False,
            )
            _LIVE.add(self)
        elif self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "this AsyncVoipNumber was first used on another event loop; aiohttp sessions "
                "cannot move between loops. Create one client per event loop (or use "
                "voipnumber_sync.VoipNumber from threads)."
            )
        return self._session

    @property
    def slots(self) -> asyncio.Semaphore:
        """Held while a request uses a connection of the pool: `async with transport.slots:`."""
        return self._slots

    async def post(
        self,
        url: str,
        body: bytes,
        credentials: HeaderSource,
        idempotency_key: str,
        timeout: aiohttp.ClientTimeout,
    ) -> Answer:
        """POST `body`, read the answer (`MAX_ANSWER_BYTES` at most), or raise an SDK error.

        Call it holding one of `slots`. The headers are built in the call to aiohttp and
        the SDK's error is raised outside of aiohttp's: no frame the error passes through
        holds the API token in its locals (error trackers record them).
        """
        failure: VoipNumberError
        try:
            session = self._get_session()
            async with session.post(
                url,
                data=body,
                headers=credentials.headers_with(idempotency_key),
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                status, headers = response.status, response.headers
                answer = await _read_capped(response)
                if answer is not None:
                    return Answer(status, headers, answer)
            failure = answer_too_large(status, headers, MAX_ANSWER_BYTES)
        except aiohttp.ClientError as error:
            failure = map_client_error(error, url)
        except asyncio.TimeoutError:
            # The attempt's total time ran out; when, relative to sending, is unknown.
            failure = OutcomeUnknownError(
                f"no answer from {url} within the attempt's total timeout; the message "
                "may have been sent",
            )
        except RuntimeError:
            if not self.closed:
                raise
            # aiohttp's "Session is closed": closed before this request had a connection.
            failure = closed_while_waiting()
        try:
            raise failure
        finally:
            # Raised outside the `except`, it should have no context; Python 3.10 still
            # links aiohttp's error (in a coroutine, the handled error outlives its
            # block), and with it the frames whose locals hold the Authorization header.
            failure.__context__ = None

    async def aclose(self) -> None:
        """Close the session and its connections. Safe to call more than once."""
        self.closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def __del__(self) -> None:
        session = self._session
        if session is None or session.closed:
            return
        warnings.warn(  # noqa: B028 - in a finalizer the stack says nothing useful
            "AsyncVoipNumber was not closed: use `async with AsyncVoipNumber(...)` "
            "or `await client.aclose()`",
            ResourceWarning,
            source=self,
        )
        # Marks the session closed (so aiohttp does not warn a second time) and leaves
        # the sockets to the connector, closed on its own loop's thread when that loop
        # runs in another one (the sync facade's portal), else here.
        connector = session.connector
        session.detach()
        if connector is None:
            return
        loop = self._loop
        with contextlib.suppress(Exception):
            if loop is not None and loop.is_running() and not _is_running_here(loop):
                loop.call_soon_threadsafe(connector._close)
            else:
                connector._close()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's session and make the next request open one.

        The session's loop and sockets belong to the parent process.
        """
        if self._session is not None:
            # Kept, never closed: closing would act on the parent's connections.
            _ABANDONED_IN_CHILD.append(self._session)
        self._session = None
        self._loop = None
        self._slots = asyncio.Semaphore(self._max_connections)


def closed_while_waiting() -> ClientClosedError:
    """The error of a request that waited to be sent while its client was closed."""
    return ClientClosedError(
        "this voipnumber client was closed while the request waited to be sent; nothing "
        "was sent. Close the client only once its sends are done"
    )


class HeaderSource(Protocol):
    """What builds a request's headers: the client's credentials, whose repr hides the token."""

    def headers_with(self, idempotency_key: str) -> Mapping[str, str]:
        """Every header of a send, with its `Idempotency-Key`."""
        ...


async def _read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is over `MAX_ANSWER_BYTES` (checked while reading)."""
    length = response.content_length
    if length is not None and length > MAX_ANSWER_BYTES:
        return None
    if length is not None and hdrs.CONTENT_ENCODING not in response.headers:
        return await response.read()  # the usual answer: the parser stops at its length
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_READ_CHUNK: Final = 64 * 1024


def _is_running_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


#: Every transport with an open session, for fork handling and interpreter exit.
_LIVE: weakref.WeakSet[Transport] = weakref.WeakSet()
_ABANDONED_IN_CHILD: list[aiohttp.ClientSession] = []


def _after_fork_in_child() -> None:
    for transport in list(_LIVE):
        transport._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


async def close_transports_on(loop: asyncio.AbstractEventLoop) -> None:
    """Close every open transport whose session lives on `loop` (run on that loop)."""
    transports = [t for t in list(_LIVE) if t._loop is loop]
    await asyncio.gather(*(t.aclose() for t in transports), return_exceptions=True)


def map_client_error(error: aiohttp.ClientError, url: str) -> VoipNumberError:
    """The SDK error an aiohttp failure stands for, by whether anything was sent."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return APIConnectionError(
            f"timed out connecting to {url}; nothing was sent and it is safe to try again"
        )
    if isinstance(error, aiohttp.ClientConnectorError):
        return APIConnectionError(
            f"could not connect to {url} ({error.os_error or error}); nothing was sent. "
            "Check base_url / VOIPNUMBER_BASE_URL and the network"
        )
    if isinstance(error, aiohttp.SocketTimeoutError):
        return OutcomeUnknownError(
            f"no answer from {url} within the read timeout; the message may have been sent"
        )
    if isinstance(error, aiohttp.InvalidURL):
        return APIConnectionError(f"invalid URL {url!r}; check base_url")
    # Disconnected, reset, or a truncated answer: the request had gone out.
    return OutcomeUnknownError(
        f"the connection to {url} failed after the request was sent "
        f"({type(error).__name__}: {error}); the message may have been sent"
    )
