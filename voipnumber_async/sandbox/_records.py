"""What the sandbox remembers: recent records, and windows of recent keys.

Everything here is bounded on request, so that a sandbox answering millions of
requests (`voipnumber bulk --sandbox` over a big file) keeps a flat memory: the
details of the most recent `keep` records (`Recent`), and the most recent keys it must
recognise (`RecentMap`). The counts are the sandbox's own attributes.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from typing import Any, Generic, SupportsIndex, TypeVar, overload

import attrs

from .._models import InboundMessage
from ._faults import Fault

__all__ = [
    "AcceptedMessage",
    "Delivery",
    "LastDelivery",
    "Recent",
    "RecentMap",
    "RecordedRequest",
]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(deque[T]):
    """The most recent records, oldest first: at most `maxlen` of them (`None`: all).

    A `collections.deque`, so that the oldest record goes as a new one comes; it also
    behaves as the plain list it replaces: it equals a list of the same items, and
    takes slices (`sandbox.messages[-3:]` is a list).
    """

    def __init__(self, iterable: Iterable[T] = (), maxlen: int | None = None) -> None:
        super().__init__(iterable, maxlen)

    def __iter__(self) -> Iterator[T]:
        # Over a copy, taken in one C call: the sandbox may append from its own thread
        # (`serve_in_thread`) while a test reads, and a deque iterated as it changes
        # raises RuntimeError where a list did not.
        return iter(list(super().__iter__()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, deque)):
            return list(self) == list(other)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        # deque has its own __ne__, which would not see a list as equal.
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # mutable, as a list

    @overload
    def __getitem__(self, index: SupportsIndex) -> T: ...
    @overload
    def __getitem__(self, index: slice) -> list[T]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(self)[index]
        return super().__getitem__(index)


class RecentMap(Generic[K, V]):
    """A mapping that remembers its `size` most recently added keys (`None`: all).

    Adding a key beyond `size` forgets the oldest, as a service forgets idempotency
    keys after a while. Changing the value of a key already there keeps its age.
    """

    def __init__(self, size: int | None) -> None:
        self.size = size
        self._values: dict[K, V] = {}
        self._order: deque[K] = deque()  # oldest first; the dict's own order cannot pop fast

    def get(self, key: K) -> V | None:
        """The value of `key`, or None if it is not (or no longer) remembered."""
        return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        """Remember `value` for `key`; forget the oldest key if that makes one too many."""
        if key not in self._values:
            if self.size == 0:
                return
            self._order.append(key)
            if self.size is not None and len(self._order) > self.size:
                del self._values[self._order.popleft()]
        self._values[key] = value

    def clear(self) -> None:
        """Forget every key."""
        self._values.clear()
        self._order.clear()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values


@attrs.define(kw_only=True)
class RecordedRequest:
    """A request as the sandbox received it, and what became of it.

    Attributes:
        received_at: When the sandbox received it, in `time.time()` seconds (the
            sandbox's wall clock): count the requests of each second with it.
        status: The HTTP status answered, or `None` when the connection was dropped.
        replayed: The answer was a replay of an earlier request with the same key.
        fault: The fault that hit this request, if any.
    """

    method: str
    path: str
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes
    received_at: float
    idempotency_key: str | None
    status: int | None = None
    replayed: bool = False
    fault: Fault | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@attrs.frozen(kw_only=True)
class AcceptedMessage:
    """A message the sandbox accepted for sending: what a real service would send."""

    id: str
    account_id: str
    from_: str
    to: str
    body: str
    idempotency_key: str | None
    timestamp_s: int


@attrs.frozen(kw_only=True)
class Delivery:
    """One POST of an inbound message to a webhook, and how the receiver answered.

    Attributes:
        message: What was delivered.
        url: Where it was posted.
        attempt: 1 for the first delivery of this `mdr_id`, 2 for the first redelivery...
        status: The HTTP status the receiver answered, or `None` if it could not be
            reached (then `error` says why).
        answer: The body of the receiver's answer.
    """

    message: InboundMessage
    url: str
    attempt: int
    status: int | None
    answer: bytes = b""
    error: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the receiver answered 2xx, as the service counts it."""
        return self.status is not None and 200 <= self.status < 300


@attrs.define
class LastDelivery:
    """The latest delivery of an `mdr_id`: what to redeliver, and how many tries so far."""

    message: InboundMessage
    url: str
    attempts: int
