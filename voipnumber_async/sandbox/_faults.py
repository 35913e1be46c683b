"""Faults as data: what the sandbox does instead of (or after) answering normally."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from .._wire.answers import HEADER_RETRY_AFTER
from .._wire.requests import JSON_CONTENT_TYPE

__all__ = ["FAULT_KINDS", "Fault"]


def _body_bytes(value: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def _check_rate(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"Fault.rate must be in (0, 1], got {value!r}")


def _check_times(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 1:
        raise ValueError(f"Fault.times must be >= 1 or None (every request), got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """One misbehaviour of the sandbox, for the next `times` requests it hits.

    Build one with the class methods (`Fault.unavailable()`, `Fault.rate_limited()`,
    `Fault.server_error()`, `Fault.dropped_connection()`, `Fault.slow()`,
    `Fault.respond()`) and give it to `Sandbox.inject()`.

    Attributes:
        status: Answer with this HTTP status instead of the normal answer.
        body: The body of that answer.
        headers: Headers of that answer (`Content-Type` included).
        drop_connection: Close the connection without answering.
        delay_s: Wait this long before answering (or before processing).
        after_processing: Apply the fault after the message was processed and accepted,
            so that the failure hides a success (an outcome-unknown case).
        times: How many requests it hits; `None` for every request.
        rate: The chance that it hits a given request (1 = every one), for faults
            spread at random over a run; the sandbox's `seed` makes it repeatable.
    """

    status: int | None = None
    body: bytes = attrs.field(default=b"", converter=_body_bytes)
    headers: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    drop_connection: bool = False
    delay_s: float = 0.0
    after_processing: bool = False
    times: int | None = attrs.field(default=1, validator=_check_times)
    rate: float = attrs.field(default=1.0, validator=_check_rate)

    def __attrs_post_init__(self) -> None:
        if self.status is None and not self.drop_connection and not self.delay_s:
            raise ValueError("a Fault must answer a status, drop the connection, or delay")
        if self.status is not None and self.drop_connection:
            raise ValueError("a Fault cannot both answer a status and drop the connection")

    @classmethod
    def respond(
        cls,
        status: int,
        body: bytes | str | Mapping[str, Any] = b"",
        *,
        content_type: str = JSON_CONTENT_TYPE,
        headers: Mapping[str, str] | None = None,
        after_processing: bool = False,
        times: int | None = 1,
        rate: float = 1.0,
    ) -> Fault:
        """Answer with exactly this status and body (an HTML 502, an unknown code, ...)."""
        return cls(
            status=status,
            body=_body_bytes(body),
            headers={"Content-Type": content_type, **(headers or {})},
            after_processing=after_processing,
            times=times,
            rate=rate,
        )

    @classmethod
    def unavailable(
        cls,
        status: int = 503,
        *,
        retry_after: float | str | None = None,
        times: int | None = 1,
        rate: float = 1.0,
    ) -> Fault:
        """Answer 503 (or 502) without processing the request."""
        return cls.respond(
            status,
            {
                "status": "ERROR",
                "error": {
                    "code": "SERVICE_UNAVAILABLE",
                    "description": "Service temporarily unavailable",
                },
            },
            headers=_retry_after_headers(retry_after),
            times=times,
            rate=rate,
        )

    @classmethod
    def rate_limited(
        cls,
        retry_after: float | str | None = 1,
        *,
        times: int | None = 1,
        rate: float = 1.0,
    ) -> Fault:
        """Answer 429, with `Retry-After` in seconds or as an HTTP date (a str)."""
        return cls.respond(
            429,
            {"status": "ERROR", "code": "RATE_LIMITED", "description": "Too many requests"},
            headers=_retry_after_headers(retry_after),
            times=times,
            rate=rate,
        )

    @classmethod
    def server_error(
        cls,
        status: int = 500,
        *,
        after_processing: bool = True,
        times: int | None = 1,
        rate: float = 1.0,
    ) -> Fault:
        """Answer 500 (or 504), by default after the message was accepted."""
        return cls.respond(
            status,
            {
                "status": "ERROR",
                "error": {"code": "INTERNAL_ERROR", "description": "Internal server error"},
            },
            after_processing=after_processing,
            times=times,
            rate=rate,
        )

    @classmethod
    def dropped_connection(
        cls, *, after_processing: bool = True, times: int | None = 1, rate: float = 1.0
    ) -> Fault:
        """Close the connection without answering, by default after accepting the message."""
        return cls(drop_connection=True, after_processing=after_processing, times=times, rate=rate)

    @classmethod
    def slow(
        cls,
        delay_s: float,
        *,
        after_processing: bool = False,
        times: int | None = 1,
        rate: float = 1.0,
    ) -> Fault:
        """Wait `delay_s` seconds, then answer normally."""
        return cls(delay_s=delay_s, after_processing=after_processing, times=times, rate=rate)

    @classmethod
    def from_spec(cls, spec: str) -> Fault:
        """The fault a `KIND[:RATE]` text names, hitting every request with chance RATE.

        `KIND` is one of `FAULT_KINDS` (`outcome_unknown`, `unavailable`, ...); `RATE`
        is in (0, 1] and defaults to 1. This is what `voipnumber sandbox --fault` takes.

        Raises:
            ValueError: an unknown kind or a bad rate; the message lists the valid kinds.
        """
        kind, separator, rate_text = spec.strip().partition(":")
        known = _KINDS.get(kind)
        if known is None:
            raise ValueError(
                f"unknown fault kind {kind!r}: expected KIND[:RATE] with KIND one of "
                f"{', '.join(_KINDS)} (such as outcome_unknown:0.1)"
            )
        return known.make(_parse_rate(rate_text) if separator else 1.0)


#: How long the `slow` fault of `Fault.from_spec` (and `voipnumber sandbox`) waits.
SLOW_FAULT_DELAY_S: Final = 2.0


@attrs.frozen
class _Kind:
    description: str
    make: Callable[[float], Fault]


# Each hits every request with its rate, for as long as the sandbox runs (times=None).
_KINDS: Final[Mapping[str, _Kind]] = {
    "outcome_unknown": _Kind(
        "the message is accepted, then the answer is an HTTP 500",
        lambda rate: Fault.server_error(times=None, rate=rate),
    ),
    "dropped_connection": _Kind(
        "the message is accepted, then the connection closes unanswered",
        lambda rate: Fault.dropped_connection(times=None, rate=rate),
    ),
    "unavailable": _Kind(
        "HTTP 503, the message is not processed",
        lambda rate: Fault.unavailable(times=None, rate=rate),
    ),
    "rate_limited": _Kind(
        "HTTP 429 with Retry-After: 1, the message is not processed",
        lambda rate: Fault.rate_limited(times=None, rate=rate),
    ),
    "slow": _Kind(
        f"the answer comes after {SLOW_FAULT_DELAY_S:g} s",
        lambda rate: Fault.slow(SLOW_FAULT_DELAY_S, times=None, rate=rate),
    ),
}

#: The faults `Fault.from_spec` knows by name, with what each does.
FAULT_KINDS: Final[Mapping[str, str]] = {name: kind.description for name, kind in _KINDS.items()}


def _parse_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0  # not a number: refused below, with the same message
    if not 0 < rate <= 1:  # also refuses nan
        raise ValueError(
            f"a fault's rate must be a number in (0, 1], the chance that a request is hit "
            f"(such as outcome_unknown:0.1), got {text!r}"
        )
    return rate


def _retry_after_headers(value: float | str | None) -> dict[str, str]:
    """The `Retry-After` header for `value` seconds (or an HTTP date); none for None."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {HEADER_RETRY_AFTER: value}
    return {HEADER_RETRY_AFTER: str(int(value)) if float(value).is_integer() else str(value)}


class FaultQueue:
    """The faults waiting to hit requests, in the order injected.

    Thread-safe, so that a test thread can inject while the sandbox serves in another.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._pending: list[list[Any]] = []  # [fault, hits left or None]
        self._random = random.Random(seed)

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._pending.extend([fault, fault.times] for fault in faults)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> Fault | None:
        """The fault that hits the next request, if any; counts it down."""
        if not self._pending:
            return None
        with self._lock:
            for entry in self._pending:
                fault, left = entry
                if fault.rate < 1 and self._random.random() >= fault.rate:
                    continue
                if left is not None:
                    if left <= 1:
                        self._pending.remove(entry)
                    else:
                        entry[1] = left - 1
                return fault  # type: ignore[no-any-return]
        return None
