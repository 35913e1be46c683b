"""A sandbox in a process of its own, for tests that count its arrivals second by second.

A sandbox served from a thread of the test process stamps `received_at` only when that
process runs its loop, and a full garbage collection of pytest's heap (hundreds of
thousands of objects once the suite has imported Django, Celery and the rest) stops it
for 50 ms and more: requests arriving meanwhile are all stamped at its end, as if sent
in a burst. In a small process of its own, the sandbox stamps them as they come.

`SandboxProcess` reads like the `Sandbox` the tests would otherwise hold (`requests`,
`messages`, `accepted_count`, `status_counts`, `inject`, `reset`, `env`); each read is
a copy, taken in the child through a `multiprocessing` manager.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from multiprocessing.managers import BaseManager
from types import TracebackType
from typing import Any

from voipnumber_async.sandbox import Fault, Sandbox
from voipnumber_async.sandbox._records import AcceptedMessage, RecordedRequest

__all__ = ["SandboxProcess"]


class _Served:
    """In the child: a sandbox serving from a thread, read and driven by the parent."""

    def __init__(self, rate_limit: float | None) -> None:
        self._sandbox = Sandbox(rate_limit=rate_limit)
        self._serving = self._sandbox.serve_in_thread()
        self._serving.__enter__()

    def env(self) -> dict[str, str]:
        return self._sandbox.env()

    def reset(self) -> None:
        self._sandbox.reset()

    def inject(self, *faults: Fault) -> None:
        self._sandbox.inject(*faults)

    def requests(self) -> list[RecordedRequest]:
        return list(self._sandbox.requests)

    def messages(self) -> list[AcceptedMessage]:
        return list(self._sandbox.messages)

    def accepted_count(self) -> int:
        return self._sandbox.accepted_count

    def status_counts(self) -> Counter[int | None]:
        return Counter(self._sandbox.status_counts)


class _Manager(BaseManager):
    pass


_Manager.register("Served", _Served)


class SandboxProcess:
    """A `Sandbox(rate_limit=...)` serving from a child process, until `stop()`."""

    def __init__(self, *, rate_limit: float | None = None) -> None:
        # Spawned, not forked: the test process runs threads (its own sandboxes, Redis
        # readers), and a fork copies whatever locks they held.
        self._manager = _Manager(ctx=multiprocessing.get_context("spawn"))
        self._manager.start()
        self._served: Any = self._manager.Served(rate_limit)  # type: ignore[attr-defined]

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End the child process, and the sandbox with it."""
        self._manager.shutdown()

    def env(self) -> dict[str, str]:
        """`Sandbox.env()`: the variables that point a client at it."""
        return dict(self._served.env())

    def reset(self) -> None:
        """`Sandbox.reset()`: forget records, counts, faults and idempotency keys."""
        self._served.reset()

    def inject(self, *faults: Fault) -> None:
        """`Sandbox.inject()`: queue faults for the next requests."""
        self._served.inject(*faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests it recorded."""
        return list(self._served.requests())

    @property
    def messages(self) -> list[AcceptedMessage]:
        """A copy of the messages it accepted."""
        return list(self._served.messages())

    @property
    def accepted_count(self) -> int:
        """Messages accepted since the last reset."""
        return int(self._served.accepted_count())

    @property
    def status_counts(self) -> Counter[int | None]:
        """Requests by the HTTP status answered."""
        return Counter(self._served.status_counts())
