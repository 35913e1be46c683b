"""Which deliveries were handled already: the memory that makes a redelivery a no-op."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final, Literal, Protocol, runtime_checkable

__all__ = [
    "Claim",
    "DeliveryStore",
    "MemoryDeliveryStore",
    "SyncDeliveryStore",
    "SyncMemoryDeliveryStore",
]

Claim = Literal["new", "done", "in_progress"]
"""What `DeliveryStore.claim` found: hand it to the handler, or it was handled already,
or another delivery of it is being handled right now."""

DEFAULT_MAX_ENTRIES: Final = 100_000
DEFAULT_TTL_S: Final = 24 * 3600.0


@runtime_checkable
class DeliveryStore(Protocol):
    """Remembers which `mdr_id`s were handled, so each reaches the handler once.

    Implement it over your database to deduplicate across processes and restarts:
    `claim` must be atomic (an insert that fails on a duplicate key, say).
    """

    async def claim(self, mdr_id: str) -> Claim:
        """Mark `mdr_id` as being handled, unless it is done or being handled already."""
        ...

    async def complete(self, mdr_id: str) -> None:
        """The handler accepted `mdr_id`: remember it as done."""
        ...

    async def release(self, mdr_id: str) -> None:
        """The handler failed on `mdr_id`: forget the claim, so a redelivery is handled."""
        ...


@runtime_checkable
class SyncDeliveryStore(Protocol):
    """`DeliveryStore` for blocking code (Flask, Django): the same methods, not async.

    The receivers of `voipnumber_async.webhooks.flask` and `.django` take one; their
    default is a `SyncMemoryDeliveryStore`. `claim` must be atomic across the threads
    (and processes) that serve deliveries.
    """

    def claim(self, mdr_id: str) -> Claim:
        """Mark `mdr_id` as being handled, unless it is done or being handled already."""
        ...

    def complete(self, mdr_id: str) -> None:
        """The handler accepted `mdr_id`: remember it as done."""
        ...

    def release(self, mdr_id: str) -> None:
        """The handler failed on `mdr_id`: forget the claim, so a redelivery is handled."""
        ...


class _MemoryEntries:
    """The bounded, forgetting memory both in-memory stores keep, behind one lock.

    The lock is for the blocking receivers, whose server calls them from many threads
    at once; an asyncio receiver never contends for it, so it costs a few hundred
    nanoseconds a call.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or not ttl_s > 0:
            raise ValueError("max_entries must be >= 1 and ttl_s > 0")
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # Kept in order of last write: with one ttl, that is in order of expiry too.
        self._entries: OrderedDict[str, tuple[bool, float]] = OrderedDict()  # done, expiry
        # No entry expires before this (the front's expiry, or less): until then, and while
        # within max_entries, there is nothing to forget and the front is not looked at.
        self._earliest_expiry = math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def _claim(self, mdr_id: str) -> Claim:
        with self._lock:
            now = self._clock()
            entry = self._entries.get(mdr_id)
            if entry is not None and entry[1] > now:
                return "done" if entry[0] else "in_progress"
            self._remember(mdr_id, False, now)
            return "new"

    def _complete(self, mdr_id: str) -> None:
        with self._lock:
            self._remember(mdr_id, True, self._clock())

    def _release(self, mdr_id: str) -> None:
        with self._lock:
            self._entries.pop(mdr_id, None)

    def _remember(self, mdr_id: str, done: bool, now: float) -> None:
        entries = self._entries
        expiry = now + self._ttl_s
        entries[mdr_id] = (done, expiry)
        entries.move_to_end(mdr_id)
        self._earliest_expiry = min(self._earliest_expiry, expiry)
        if len(entries) > self._max_entries or now >= self._earliest_expiry:
            self._forget_old(now)

    def _forget_old(self, now: float) -> None:
        entries = self._entries
        # In order of last write, so the expired ones are at the front.
        while entries:
            oldest, (_, expiry) = next(iter(entries.items()))
            if expiry > now and len(entries) <= self._max_entries:
                self._earliest_expiry = expiry
                return
            del entries[oldest]
        self._earliest_expiry = math.inf


class MemoryDeliveryStore(_MemoryEntries):
    """A `DeliveryStore` in this process's memory: bounded, and forgetting after a while.

    Safe to share between threads (each call holds a lock for a dictionary update).

    Args:
        max_entries: How many `mdr_id`s it remembers; the oldest go first.
        ttl_s: How long it remembers one, in seconds. The service redelivers within
            hours, not days, so a day is plenty.
        clock: Where time comes from (for tests).

    Raises:
        ValueError: `max_entries` is under 1 or `ttl_s` is not positive.
    """

    async def claim(self, mdr_id: str) -> Claim:
        """See `DeliveryStore.claim`."""
        return self._claim(mdr_id)

    async def complete(self, mdr_id: str) -> None:
        """See `DeliveryStore.complete`."""
        self._complete(mdr_id)

    async def release(self, mdr_id: str) -> None:
        """See `DeliveryStore.release`."""
        self._release(mdr_id)


class SyncMemoryDeliveryStore(_MemoryEntries):
    """A `SyncDeliveryStore` in this process's memory, safe under threads.

    The default of the Flask and Django receivers. It deduplicates within one process
    only: under a server with several worker processes (gunicorn's `--workers`), pass
    one over your database instead.

    Args:
        max_entries: How many `mdr_id`s it remembers; the oldest go first.
        ttl_s: How long it remembers one, in seconds.
        clock: Where time comes from (for tests).

    Raises:
        ValueError: `max_entries` is under 1 or `ttl_s` is not positive.
    """

    def claim(self, mdr_id: str) -> Claim:
        """See `SyncDeliveryStore.claim`."""
        return self._claim(mdr_id)

    def complete(self, mdr_id: str) -> None:
        """See `SyncDeliveryStore.complete`."""
        self._complete(mdr_id)

    def release(self, mdr_id: str) -> None:
        """See `SyncDeliveryStore.release`."""
        self._release(mdr_id)
