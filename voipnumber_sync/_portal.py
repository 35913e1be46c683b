"""The portal: one private event loop in a daemon thread, running every sync client's work.

This is the only hand-written machinery of the sync facade, on public asyncio APIs only.
A blocking call hands its coroutine to the loop with `call_soon_threadsafe` and sleeps on
a lock that the coroutine's task releases when done; the aiohttp sessions of all sync
clients live on that one loop, so any thread may call any client and no session ever
meets a second loop.

- Started lazily, on the first call; a daemon thread, so it never holds up exit. At
  exit it closes the clients still open (`close_at_exit`), with their own `aclose()`.
- After `os.fork()` the child starts a fresh loop of its own on its first call.
- Ctrl-C in a blocking call cancels the coroutine (and so its request) and re-raises.
- A sync iterator over an async one (`iterate`, the sync `send_many`) takes in one
  hand-off every item that is ready, so a loop over many results does not pay a thread
  hop for each.
- A call from the portal's own thread (a hook run by the client, say) would wait on
  itself forever, so it raises instead.

An earlier form started calls inside the loop's selector (a `BaseSelector` subclass,
to spare the loop's wake-up pipe) and freed one 512 KiB block to raise glibc's mmap
threshold. Measured against it with `bench_sync.py`'s loads in one process, alternating
(8 blocks, 8 rounds; a busy 2-core machine, sandbox on the other core), this form took
1.00x its time per sequential call (blocks 0.91-1.17) and gave 1.07x its throughput
with 32 threads (rounds 0.80-1.38). Without the priming each answer read costs an mmap,
an mremap and an munmap (strace: 6,261 such calls for 2,000 sends, 255 with it), for
async clients alike, yet 32 threads reached 0.84x async unprimed and 0.87x primed (9 rounds
each in alternating processes, rounds 0.60-1.21): within the noise, so neither stays.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

__all__ = ["BatchedIterator", "Portal", "portal"]

P = ParamSpec("P")
T = TypeVar("T")

#: How long an interrupted call waits for its coroutine to finish cancelling.
_CANCEL_GRACE_S = 5.0
#: How long interpreter exit waits for the portal to close open clients.
_SHUTDOWN_GRACE_S = 2.0
#: Items a sync iterator takes in one hand-off at most: enough to make the hop rare,
#: few enough that the first item of a batch is not held back long.
_BATCH = 64


class _Closable(Protocol):
    async def aclose(self) -> None: ...


class _Call(Generic[T]):
    """One blocking call: started on the loop, and a lock released once it is done.

    A plain lock, not a `concurrent.futures.Future`: the future wakes its caller while
    holding its condition's lock, which the woken caller must then take back, a second
    handoff between threads for every call. Measured without a network (a MockTransport client,
    both forms in one process, 6 alternating rounds, a busy 2-core machine): the
    future gave 0.93x the lock's throughput with 32 threads (rounds 0.65-0.99) and 33
    µs more per sequential call (median of the rounds' differences).
    """

    __slots__ = ("args", "done", "error", "finished", "function", "kwargs", "result", "task")

    def __init__(
        self,
        function: Callable[..., Coroutine[Any, Any, T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs
        self.done = threading.Lock()
        self.done.acquire()
        self.finished = False
        self.result: T | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # On the loop. The coroutine is made here, not in the caller's thread, so that a
        # call the loop never takes (it was closed) leaves no coroutine unawaited.
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            self.result = await self.function(*self.args, **self.kwargs)
        except BaseException as error:  # every outcome, cancellation too, goes to the caller
            self.error = error
        finally:
            self.finished = True
            self.done.release()

    def cancel(self) -> None:
        # On the loop; `start` ran before, as it was scheduled first.
        if self.task is not None:
            self.task.cancel()


class Portal:
    """A private event loop in a daemon thread, and blocking calls into it."""

    def __init__(self) -> None:
        self._start_lock = threading.Lock()
        #: Set once the loop runs; made by the first caller, who starts the loop.
        self._started: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_id: int | None = None
        self._thread: threading.Thread | None = None
        #: The clients to close at exit; weak, so a dropped client still warns it was
        #: not closed (its transport's finalizer says so).
        self._clients: weakref.WeakSet[_Closable] = weakref.WeakSet()

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
        loop = asyncio.new_event_loop()

        def run() -> None:
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
            RuntimeError: Called from the portal's own thread, where it would deadlock;
                or the loop is closed.
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
        # In a copy of the caller's context, which its task inherits: what the calling
        # thread has current (an OpenTelemetry span, say) is current for the coroutine.
        loop.call_soon_threadsafe(call.start, context=contextvars.copy_context())
        try:
            call.done.acquire()  # a Ctrl-C arrives here
        except BaseException:
            # Ctrl-C (or any async exception) while blocked: cancel the work so that
            # nothing goes on behind the caller's back, then let the exception through.
            if not call.finished:
                loop.call_soon_threadsafe(call.cancel)
                call.done.acquire(timeout=_CANCEL_GRACE_S)
            raise
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]

    def iterate(self, iterator: AsyncIterator[T]) -> BatchedIterator[T]:
        """A blocking iterator over `iterator`, taking every ready item in one hand-off.

        `close()` (or dropping it) closes the async one too.
        """
        return BatchedIterator(self, iterator)

    def close_at_exit(self, client: _Closable) -> None:
        """Close `client` with its `aclose()` at interpreter exit, if it is still alive then."""
        self._clients.add(client)

    def shutdown(self) -> None:
        """Close the clients still open on the loop and stop it; for interpreter exit."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not loop.is_running():
            return

        async def close_clients() -> None:
            clients = list(self._clients)
            await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)

        future = asyncio.run_coroutine_threadsafe(close_clients(), loop)
        with contextlib.suppress(Exception):  # exiting regardless; nothing to report to
            future.result(_SHUTDOWN_GRACE_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_SHUTDOWN_GRACE_S)

    def _after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here; its loop and lock are the
        # parent's. Forget them: the next call starts a loop of this process's own.
        # The clients stay listed: the child may go on using them, on its own loop.
        self._start_lock = threading.Lock()
        self._started = None
        self._loop = None
        self._thread = None
        self._thread_id = None


class BatchedIterator(Iterator[T]):
    """A blocking iterator over an async one, made by `Portal.iterate`.

    A hand-off waits for the next item, then takes those that follow without waiting
    (`_BATCH` at most): the async iterator's next step is started as a task and given
    one turn of the loop; if it is not done by then it is left running, and the next
    hand-off waits for it. Items come in order, each once; an error comes after the
    items before it. Not for several threads at once, as a generator is not.
    """

    def __init__(self, portal: Portal, iterator: AsyncIterator[T]) -> None:
        self._portal = portal
        self._iterator = iterator
        self._ready: deque[T] = deque()
        #: What ended the iteration, raised once `_ready` is empty.
        self._end: BaseException | None = None
        #: The async iterator's next step, started on the loop and not yet done.
        self._ahead: asyncio.Future[T] | None = None
        self._closed = False

    def __iter__(self) -> BatchedIterator[T]:
        return self

    def __next__(self) -> T:
        """The next item; `StopIteration` at the end; the async iterator's error as it came."""
        ready = self._ready
        if not ready:
            if self._end is None:
                items, self._end = self._portal.call(self._take)
                ready.extend(items)
            if not ready:
                end, self._end = self._end, StopAsyncIteration()  # an error is raised once
                if isinstance(end, StopAsyncIteration):
                    raise StopIteration from None
                assert end is not None
                raise end
        return ready.popleft()

    async def _take(self) -> tuple[list[T], BaseException | None]:
        items: list[T] = []
        step = self._ahead or asyncio.ensure_future(self._iterator.__anext__())
        self._ahead = None
        try:
            while True:
                try:
                    items.append(await step)  # the first waits; the others are done
                except Exception as error:  # StopAsyncIteration, or the iterator's error
                    return items, error
                if len(items) == _BATCH:
                    return items, None
                step = asyncio.ensure_future(self._iterator.__anext__())
                await asyncio.sleep(0)  # one turn: enough for an item that is ready
                if not step.done():
                    self._ahead = step
                    return items, None
        except BaseException:  # cancelled (Ctrl-C in the caller): stop the step too
            step.cancel()
            raise

    def close(self) -> None:
        """Stop: cancel the step started ahead, then close the async iterator. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._ready.clear()
        self._end = StopAsyncIteration()
        ahead, self._ahead = self._ahead, None
        self._portal.call(_close, self._iterator, ahead)

    def __del__(self) -> None:
        # Dropped without `close()` (a `break`): close on the loop without waiting, from
        # whichever thread the collector runs in, the portal's own included.
        if getattr(self, "_closed", True):
            return
        loop = self._portal._loop
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs there
            if loop is not None and loop.is_running():
                coroutine = _close(self._iterator, self._ahead)
                try:
                    asyncio.run_coroutine_threadsafe(coroutine, loop)
                except RuntimeError:
                    coroutine.close()
                    raise


async def _close(iterator: AsyncIterator[Any], ahead: asyncio.Future[Any] | None) -> None:
    """Cancel the step started ahead, wait for it, then `aclose()` the iterator if it has one."""
    if ahead is not None:
        ahead.cancel()
        await asyncio.wait((ahead,))
        if not ahead.cancelled():
            ahead.exception()  # an error after a stop is nobody's: mark it seen, not logged
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


_PORTAL = Portal()
os.register_at_fork(after_in_child=_PORTAL._after_fork_in_child)
atexit.register(_PORTAL.shutdown)


def portal() -> Portal:
    """The process's portal, shared by every sync client."""
    return _PORTAL
