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

import aiohttp

from ._config import Timeout
from ._errors import (
    APIConnectionError,
    ClientClosedError,
    OutcomeUnknownError,
    VoipNumberError,
)
from ._rate import RateLimitPause
from ._wire import Answer


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

    Requests beyond `max_connections` queue for a slot here, before their attempt's
    timeout starts: otherwise a burst larger than the pool would spend its `connect`
    limit waiting for a connection and fail without ever being sent.
    """

    def __init__(self, *, max_connections: int) -> None:
        self._max_connections = max_connections
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False
        #: Set by a 429 to any request through this pool; every request waits it out.
        self.pause = RateLimitPause()

    @property
    def opened(self) -> bool:
        """Whether a session was created and is still open."""
        return self._session is not None and not self._session.closed

    def _get_session(self) -> aiohttp.ClientSession:
        if self.closed:
            # A request that waited (a pause, a retry) while the client was closed: it
            # must not open a new session that nothing would close.
            raise ClientClosedError(
                "this voipnumber client was closed while the request waited to be sent; "
                "nothing was sent"
            )
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

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> Answer:
        """POST `body` and read the whole answer; raise an SDK error if that fails."""
        session = self._get_session()
        try:
            async with (
                self._slots,
                session.post(
                    url, data=body, headers=headers, timeout=timeout, allow_redirects=False
                ) as response,
            ):
                return Answer(response.status, response.headers, await response.read())
        except aiohttp.ClientError as error:
            raise map_client_error(error, url) from error
        except asyncio.TimeoutError as error:
            # The attempt's total time ran out; when, relative to sending, is unknown.
            raise OutcomeUnknownError(
                f"no answer from {url} within the attempt's total timeout; the message "
                "may have been sent",
            ) from error

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
