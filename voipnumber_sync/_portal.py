"""The portal: one private event loop in a daemon thread, running every sync client's work.

This is the only hand-written machinery of the sync facade. A blocking call hands its
coroutine to the portal's loop and sleeps on a lock until the loop releases it; the
aiohttp sessions of all sync clients live on that one loop, so any thread may call any
client and no session ever meets a second loop.

- Started lazily, on the first call; a daemon thread, so it never holds up exit.
- After `os.fork()` the child starts a fresh loop of its own on its first call.
- Ctrl-C in a blocking call cancels the coroutine (and so its request) and re-raises.
- A call is started by the loop itself when it next polls for I/O; only a call made
  while the loop sleeps in that poll writes to its wake-up pipe, so a busy loop is
  never woken.
- A call from the portal's own thread (a hook run by the client, say) would wait on
  itself forever, so it raises instead.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import selectors
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from voipnumber_async._aiohttp import close_transports_on

__all__ = ["Portal", "portal"]

P = ParamSpec("P")
T = TypeVar("T")

#: How long an interrupted call waits for its coroutine to finish cancelling.
_CANCEL_GRACE_S = 5.0
#: How long interpreter exit waits for the portal to close open sessions.
_SHUTDOWN_GRACE_S = 2.0
#: Above the 256 KiB (and header) that asyncio allocates for each read; see `_start`.
_PRIME_ALLOCATOR_BYTES = 512 * 1024


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
        # Runs on the portal's loop, inside its poll for I/O: nothing may escape from
        # here, or the loop itself would stop. The coroutine is made here, not in the
        # caller's thread, so a call that never starts leaves no coroutine unawaited.
        run = self._run()
        try:
            self.task = loop.create_task(run)
        except BaseException as error:  # the loop is closing; the caller gets the reason
            run.close()
            self.error = error
            self._done.release()

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


class _Submissions:
    """Calls submitted from callers' threads, not yet started on the loop."""

    __slots__ = ("calls", "polling")

    def __init__(self) -> None:
        self.calls: deque[_Call] = deque()
        #: The loop is in, or about to enter, a poll that may sleep.
        self.polling = False

    def start_all(self, loop: asyncio.AbstractEventLoop) -> None:
        calls = self.calls
        while calls:
            calls.popleft().start(loop)


class _StartingSelector(selectors.BaseSelector):
    """The portal loop's selector: each poll for I/O also starts the calls submitted.

    A blocking call appends itself to the queue from its own thread. Waking the loop for
    it means a write to the loop's pipe and a read back, each a system call that hands
    the GIL to another thread; with many threads calling, those handoffs cost more than
    the work. So the loop drains the queue on every poll, and a caller wakes the loop
    only when it may be asleep in one.

    The caller appends, then reads `polling`; the loop sets `polling`, then looks at the
    queue before it sleeps. Whichever comes second sees the other's write, so no call
    waits behind a sleeping loop. (Each step is one operation on a deque or an
    attribute, which the GIL orders.)
    """

    def __init__(self, submissions: _Submissions) -> None:
        self._selector = selectors.DefaultSelector()
        self._submissions = submissions
        self.loop: asyncio.AbstractEventLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        submissions = self._submissions
        if timeout is None or timeout > 0:
            submissions.polling = True
            if submissions.calls:
                timeout = 0
        try:
            events = self._selector.select(timeout)
        finally:
            submissions.polling = False
        if submissions.calls and self.loop is not None:
            submissions.start_all(self.loop)
        return events

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._selector.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._selector.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._selector.get_map()

    def close(self) -> None:
        self._selector.close()


class Portal:
    """A private event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self._start_lock = threading.Lock()
        #: Set once the loop runs; made by the first caller, who starts the loop.
        self._started: threading.Event | None = None
        self._submissions = _Submissions()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The portal's running loop, started on first use."""
        loop = self._loop
        if loop is None:
            # The lock only elects the caller that starts the loop: nothing waits while
            # holding it. Under gevent (`gunicorn -k gevent --preload`: this module
            # imported before threading was patched) the lock is a real OS lock and the
            # waits below yield to the hub; a greenlet that held the lock across them
            # blocked every other greenlet that came for it, and the worker hung.
            with self._start_lock:
                started = self._started
                starter = started is None
                if started is None:
                    started = self._started = threading.Event()
            if starter:
                self._start(started)
            started.wait()
            loop = self._loop
            assert loop is not None
        return loop

    def _start(self, started: threading.Event) -> None:
        selector = _StartingSelector(self._submissions)
        loop = selector.loop = asyncio.SelectorEventLoop(selector)

        def run() -> None:
            # asyncio reads from a socket into a fresh 256 KiB buffer, then shrinks it.
            # glibc serves blocks that large with mmap until a freed one raises its
            # (dynamic) threshold, and the shrunk buffer never does: measured on this
            # thread, every read cost an mmap, an mremap and an munmap, the munmap a TLB
            # flush on each core the process runs on; with 32 threads calling, a third
            # of the CPU. Freeing one larger block, whole, raises the threshold as glibc
            # intends, and those buffers then come from the heap.
            block = bytes(_PRIME_ALLOCATOR_BYTES)
            del block
            asyncio.set_event_loop(loop)
            self._thread_id = threading.get_ident()
            loop.call_soon(started.set)
            loop.run_forever()

        thread = threading.Thread(target=run, name="voipnumber-portal", daemon=True)
        self._thread = thread
        self._loop = loop
        thread.start()

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
        submissions = self._submissions
        submissions.calls.append(call)
        if submissions.polling:
            # No "already woken" mark to save a write: a mark set without its write
            # (a thread switch, a Ctrl-C between the two) would leave later callers
            # waiting on a loop that nobody woke. Extra writes only when it sleeps.
            loop.call_soon_threadsafe(submissions.start_all, loop)
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
        self._started = None
        self._submissions = _Submissions()
        self._loop = None
        self._thread = None
        self._thread_id = None


_PORTAL = Portal()
os.register_at_fork(after_in_child=_PORTAL._after_fork_in_child)
atexit.register(_PORTAL.shutdown)


def portal() -> Portal:
    """The process's portal, shared by every sync client."""
    return _PORTAL
