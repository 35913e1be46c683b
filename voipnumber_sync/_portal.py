"""The portal: one private event loop in a daemon thread, running every sync client's work.

This is the only hand-written machinery of the sync facade. A blocking call hands its
coroutine to the portal's loop and sleeps on a lock until the loop releases it; the
aiohttp sessions of all sync clients live on that one loop, so any thread may call any
client and no session ever meets a second loop.

- Started lazily, on the first call; a daemon thread, so it never holds up exit.
- After `os.fork()` the child starts a fresh loop of its own on its first call.
- Ctrl-C in a blocking call cancels the coroutine (and so its request) and re-raises.
- Calls from many threads at once are started together, on one wake-up of the loop.
- A call from the portal's own thread (a hook run by the client, say) would wait on
  itself forever, so it raises instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

from voipnumber_async._transport import close_transports_on

__all__ = ["Portal", "portal"]

P = ParamSpec("P")
T = TypeVar("T")

#: How long an interrupted call waits for its coroutine to finish cancelling.
_CANCEL_GRACE_S = 5.0
#: How long interpreter exit waits for the portal to close open sessions.
_SHUTDOWN_GRACE_S = 2.0


class _Call:
    """One blocking call: its coroutine function, and a lock released once it is done."""

    __slots__ = ("_done", "args", "error", "function", "kwargs", "result", "task")

    def __init__(
        self,
        function: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._done = threading.Lock()
        self._done.acquire()
        self.function, self.args, self.kwargs = function, args, kwargs
        self.task: asyncio.Task[None] | None = None
        self.result: Any = None
        self.error: BaseException | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs on the portal's loop. The coroutine is made here, not in the caller's
        # thread, so a call that never starts leaves no coroutine unawaited.
        self.task = loop.create_task(self._run())

    async def _run(self) -> None:
        # Releasing from inside the task, rather than from a done-callback, saves the
        # loop one step per call.
        try:
            self.result = await self.function(*self.args, **self.kwargs)
        except BaseException as error:  # every outcome, cancellation too, goes to the caller
            self.error = error
        finally:
            self._done.release()

    def wait(self, timeout: float = -1) -> bool:
        return self._done.acquire(timeout=timeout)


class Portal:
    """A private event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self._start_lock = threading.Lock()
        # Calls waiting to be started, and whether the loop was already woken for them:
        # many threads calling at once cost one wake-up of the loop, not one each.
        self._submitted: deque[_Call] = deque()
        self._wakeup_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's running loop, started on first use."""
        loop = self._loop
        if loop is None:
            with self._start_lock:
                if self._loop is None:
                    self._start()
                loop = self._loop
                assert loop is not None
        return loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._thread_id = threading.get_ident()
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="voipnumber-portal", daemon=True)
        thread.start()
        started.wait()
        self._thread = thread
        self._loop = loop

    def call(
        self,
        function: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `function(*args, **kwargs)` on the portal's loop and return its result.

        Blocks the calling thread until it is done. Its exception is raised here, as
        the same object, with this call's frames in front of its traceback.

        Raises:
            RuntimeError: Called from the portal's own thread, where it would deadlock.
            KeyboardInterrupt: Interrupted; the coroutine was cancelled first.
        """
        loop = self.loop
        if threading.get_ident() == self._thread_id:
            raise RuntimeError(
                "a blocking voipnumber call was made on the voipnumber portal's own thread "
                "(for example from a RetryPolicy.on_retry hook) and would wait on itself "
                "forever; inside coroutines and hooks use AsyncVoipNumber instead"
            )
        call = _Call(function, args, kwargs)
        self._submitted.append(call)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            loop.call_soon_threadsafe(self._start_submitted, loop)
        try:
            call.wait()
        except BaseException:
            # Ctrl-C (or any async exception) while blocked: cancel the work so that
            # nothing goes on behind the caller's back, then let the exception through.
            self._cancel(loop, call)
            raise
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[no-any-return]

    def _start_submitted(self, loop: asyncio.AbstractEventLoop) -> None:
        # Cleared before draining: a call submitted from now on wakes the loop again,
        # and one submitted before is drained here.
        self._wakeup_pending = False
        submitted = self._submitted
        while submitted:
            submitted.popleft().start(loop)

    @staticmethod
    def _cancel(loop: asyncio.AbstractEventLoop, call: _Call) -> None:
        def cancel() -> None:
            if call.task is not None:
                call.task.cancel()

        loop.call_soon_threadsafe(cancel)
        call.wait(_CANCEL_GRACE_S)

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """Iterate an async iterator from blocking code, one `call` per item.

        Closing the returned iterator early (`break`) closes the async one too.
        """

        async def next_item() -> T:
            return await iterator.__anext__()

        try:
            while True:
                try:
                    item = self.call(next_item)
                except StopAsyncIteration:
                    return
                yield item
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                self.call(aclose)

    def shutdown(self) -> None:
        """Close the sessions still open on the loop and stop it; for interpreter exit."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(close_transports_on(loop), loop)
        with contextlib.suppress(Exception):  # exiting regardless; nothing to report to
            future.result(_SHUTDOWN_GRACE_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_SHUTDOWN_GRACE_S)

    def _after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here; its loop and lock are the
        # parent's. Forget them: the next call starts a loop of this process's own.
        self._start_lock = threading.Lock()
        self._submitted = deque()
        self._wakeup_pending = False
        self._loop = None
        self._thread = None
        self._thread_id = None


_PORTAL = Portal()
os.register_at_fork(after_in_child=_PORTAL._after_fork_in_child)
atexit.register(_PORTAL.shutdown)


def portal() -> Portal:
    """The process's portal, shared by every sync client."""
    return _PORTAL
