"""The default transport, `AiohttpTransport`: the only owner of an `aiohttp.ClientSession`.

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
from typing import Any, Final

import aiohttp
from aiohttp import hdrs

from ._config import DEFAULT_MAX_CONNECTIONS, MAX_ANSWER_BYTES, Timeout
from ._errors import (
    APIConnectionError,
    ClientClosedError,
    OutcomeUnknownError,
    VoipNumberError,
)
from ._transport import TransportRequest, TransportResponse
from ._wire.answers import answer_too_large

__all__ = ["AiohttpTransport"]


class AiohttpTransport:
    """The default transport: one lazily created aiohttp session, reused for its pool.

    Shared by a client and the copies `with_options()` makes of it; the client that
    created it (or was given it) closes it.

    Args:
        max_connections: The size of aiohttp's connection pool; the client passes its
            own `max_connections`.
    """

    def __init__(self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: tuple[Timeout, aiohttp.ClientTimeout] | None = None
        self._closed = False
        self._unclosed: weakref.finalize[Any, Any] | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            # A request that waited (a pause, a retry, a connection) while the client was
            # closed: it must not open a new session that nothing would close.
            raise ClientClosedError.while_waiting()
        if self._session is None:
            self._loop = asyncio.get_running_loop()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                # Each request passes its own timeout; the session must not add one.
                timeout=aiohttp.ClientTimeout(total=None),
                raise_for_status=False,
            )
            # A finalizer that holds the session, not one on the transport: a client is
            # freed by the garbage collector (it and its `sms` refer to each other), which
            # finalizes what it frees in no set order, so aiohttp's connector would often
            # go first and report itself, not the client that was left open.
            self._unclosed = weakref.finalize(self, _report_unclosed, self._session, self._loop)
            self._unclosed.atexit = False  # open at exit is the portal's to close, not an error
            _LIVE.add(self)
        elif self._loop is not asyncio.get_running_loop():
            raise RuntimeError(
                "this AsyncVoipNumber was first used on another event loop; aiohttp sessions "
                "cannot move between loops. Create one client per event loop (or use "
                "voipnumber_sync.VoipNumber from threads)."
            )
        return self._session

    def _client_timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        """Aiohttp's timeout for one attempt (the last one made is reused).

        `connect` covers opening a connection (the wait for a pool slot happens before,
        in the client), so that when it runs out we know nothing was sent.
        """
        cached = self._timeouts
        if cached is not None and cached[0] is timeout:
            return cached[1]
        converted = aiohttp.ClientTimeout(
            total=timeout.total, connect=timeout.connect, sock_read=timeout.read
        )
        self._timeouts = (timeout, converted)
        return converted

    async def handle_async_request(self, request: TransportRequest) -> TransportResponse:
        """Send `request`, read the answer (`MAX_ANSWER_BYTES` at most), or raise an SDK error.

        The SDK's error is raised outside of aiohttp's, once the request is out of this
        frame's locals: no frame the error passes through holds the API token (error
        trackers record locals).
        """
        url = request.url
        failure: VoipNumberError
        try:
            session = self._get_session()
            async with session.request(
                request.method,
                url,
                data=request.body,
                headers=request.headers,
                timeout=self._client_timeout(request.timeout),
                allow_redirects=False,
            ) as response:
                status, headers = response.status, response.headers
                body = await _read_capped(response)
                if body is not None:
                    return TransportResponse(status, headers, body)
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
            if not self._closed:
                raise
            # aiohttp's "Session is closed": closed before this request had a connection.
            failure = ClientClosedError.while_waiting()
        del request
        try:
            raise failure
        finally:
            # Raised outside the `except`, it should have no context; Python 3.10 still
            # links aiohttp's error (in a coroutine, the handled error outlives its
            # block), and with it the frames whose locals hold the Authorization header.
            failure.__context__ = None

    async def aclose(self) -> None:
        """Close the session and its connections. Safe to call more than once."""
        self._closed = True
        if self._unclosed is not None:
            self._unclosed.detach()
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's session and make the next request open one.

        The session's loop and sockets belong to the parent process.
        """
        if self._unclosed is not None:
            self._unclosed.detach()
        if self._session is not None:
            # Kept, never closed: closing would act on the parent's connections.
            _ABANDONED_IN_CHILD.append(self._session)
        self._session = None
        self._loop = None


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


def _report_unclosed(session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop) -> None:
    """Warn that a client was never closed, and close its connections."""
    if session.closed:
        return
    warnings.warn(  # noqa: B028 - in a finalizer the stack says nothing useful
        "AsyncVoipNumber was not closed: use `async with AsyncVoipNumber(...)` "
        "or `await client.aclose()`",
        ResourceWarning,
    )
    # Marks the session closed (so aiohttp does not warn a second time) and leaves the
    # sockets to the connector, closed on its own loop's thread when that loop runs in
    # another one (the sync facade's portal), else here.
    connector = session.connector
    session.detach()
    if connector is None:
        return
    with contextlib.suppress(Exception):
        if loop.is_running() and not _is_running_here(loop):
            loop.call_soon_threadsafe(connector._close)
        else:
            connector._close()


def _is_running_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


#: Every transport with an open session, for fork handling.
_LIVE: weakref.WeakSet[AiohttpTransport] = weakref.WeakSet()
_ABANDONED_IN_CHILD: list[aiohttp.ClientSession] = []


def _after_fork_in_child() -> None:
    for transport in list(_LIVE):
        transport._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
