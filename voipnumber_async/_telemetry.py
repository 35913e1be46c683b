"""OpenTelemetry spans and metrics: the ONLY module that imports `opentelemetry`.

The SDK instruments itself through the global OpenTelemetry API, as the OpenTelemetry
guidance asks of libraries: the application configures an SDK (or does not), and the
SDK calls nothing to take part. Install the API with `voipnumber[otel]`.

What it costs is chosen here, once:

- without `opentelemetry-api` installed, every entry point returns `None` or does
  nothing;
- with the API and no SDK configured (the global providers are still the API's
  proxies), the same: one check of the two global providers per send or delivery,
  no span, no attribute built;
- with an SDK, a span per send (`voipnumber.sms.send`), per bulk run
  (`voipnumber.sms.send_many`) and per webhook delivery (`voipnumber.webhook.receive`),
  and the counters and histogram below. Attributes are built only for a span that is
  recording.

The global providers are looked up at each send, not at import, so one an application
sets after importing voipnumber is used. Nothing recorded holds the API token, the
webhook secret or a message body; phone numbers only with
`AsyncVoipNumber(telemetry_phone_numbers=True)`. docs/telemetry.md lists every name.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

from ._errors import RateLimitError, VoipNumberError
from ._version import __version__

if TYPE_CHECKING:
    from ._bulk.messages import BulkSummary

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import ProxyTracerProvider, SpanKind, Status, StatusCode
except ImportError:  # the API is the optional `otel` extra: without it, nothing is recorded
    AVAILABLE = False
else:
    AVAILABLE = True

#: The API's stand-in before an SDK's meter provider is set. Private, so looked up
#: defensively: if it moves, metrics count as configured (a proxy instrument's `add`
#: without a provider is a no-op anyway).
_PROXY_METER_PROVIDERS: tuple[type, ...] = ()
try:
    from opentelemetry.metrics import _internal as _metrics_internal
    from opentelemetry.metrics._internal import _ProxyMeterProvider
except ImportError:  # pragma: no cover - the API is absent, or its private layout moved
    _FAST_CHECK = False
else:
    _PROXY_METER_PROVIDERS = (_ProxyMeterProvider,)
    # The API keeps the providers an application set in these two globals. Reading them
    # costs two attribute loads; its public getters read os.environ on every call while
    # nothing is set (about 1 µs each), which is most of what a send would pay here.
    _FAST_CHECK = hasattr(trace, "_TRACER_PROVIDER") and hasattr(
        _metrics_internal, "_METER_PROVIDER"
    )

#: Providers named by environment variable are loaded by the API's getters, on first
#: use: with one set, ask the getters.
_PROVIDER_VARIABLES: Final = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
_PROVIDERS_FROM_ENV: Final = any(name in os.environ for name in _PROVIDER_VARIABLES)

__all__ = [
    "AVAILABLE",
    "SCOPE_NAME",
    "BulkSpan",
    "SendTelemetry",
    "delivery_span",
    "record_delivery",
    "start_bulk",
    "start_send",
]

#: The instrumentation scope: the tracer's and the meter's name.
SCOPE_NAME: Final = "voipnumber"

SEND_SPAN: Final = "voipnumber.sms.send"
BULK_SPAN: Final = "voipnumber.sms.send_many"
DELIVERY_SPAN: Final = "voipnumber.webhook.receive"

ATTR_ACCOUNT_ID: Final = "voipnumber.account_id"
ATTR_ATTEMPTS: Final = "voipnumber.attempts"
ATTR_OUTCOME: Final = "voipnumber.outcome"
ATTR_RETRIED: Final = "voipnumber.retried"
ATTR_WAITED: Final = "voipnumber.waited_s"
ATTR_FROM: Final = "voipnumber.from"
ATTR_TO: Final = "voipnumber.to"
ATTR_REASON: Final = "voipnumber.retry.reason"
ATTR_WAIT: Final = "voipnumber.retry.wait_s"
ATTR_ATTEMPT: Final = "voipnumber.retry.attempt"
ATTR_MDR_ID: Final = "voipnumber.mdr_id"
ATTR_REFUSED: Final = "voipnumber.webhook.reason"
ATTR_ERROR_TYPE: Final = "error.type"
ATTR_HTTP_STATUS: Final = "http.response.status_code"

OUTCOME_SENT: Final = "sent"
#: A bulk worker stopped before the first attempt: nothing was sent, no error class.
OUTCOME_NOT_SENT: Final = "not_sent"
OUTCOME_CANCELLED: Final = "cancelled"
#: The `error.type` of a bulk run dropped by its caller without being closed.
ABANDONED: Final = "abandoned"
#: The duration's attributes for the usual outcome, made once.
_SENT_ATTRIBUTES: Final = {ATTR_OUTCOME: OUTCOME_SENT}


class _Instruments:
    """The counters and the histogram, made once from the API's meter.

    Made at import from `metrics.get_meter`: before an SDK is configured that is the
    API's proxy meter, whose instruments start recording once one is set.
    """

    def __init__(self) -> None:
        meter = metrics.get_meter(SCOPE_NAME, __version__)
        self.sent = meter.create_counter(
            "voipnumber.sms.sent", unit="{message}", description="Messages the service accepted."
        )
        self.failed = meter.create_counter(
            "voipnumber.sms.failed",
            unit="{message}",
            description="Messages certainly not sent, by error.type.",
        )
        self.unknown = meter.create_counter(
            "voipnumber.sms.outcome_unknown",
            unit="{message}",
            description="Messages that may or may not have been sent.",
        )
        self.retries = meter.create_counter(
            "voipnumber.sms.retries",
            unit="{retry}",
            description="Attempts retried, by the reason (the error class) of the failure.",
        )
        self.pauses = meter.create_counter(
            "voipnumber.sms.rate_limit_pauses",
            unit="{pause}",
            description="429 answers waited out, each pausing the pacer's requests.",
        )
        self.duration = meter.create_histogram(
            "voipnumber.sms.send.duration",
            unit="s",
            description="Seconds per send, its retries and waits included, by outcome.",
        )
        self.accepted = meter.create_counter(
            "voipnumber.webhook.accepted",
            unit="{delivery}",
            description="Deliveries handed to the handler, which returned.",
        )
        self.refused = meter.create_counter(
            "voipnumber.webhook.refused",
            unit="{delivery}",
            description="Deliveries answered with an error, by reason.",
        )
        self.duplicates = meter.create_counter(
            "voipnumber.webhook.duplicates",
            unit="{delivery}",
            description="Redeliveries of a message already handled.",
        )


_instruments: _Instruments | None = _Instruments() if AVAILABLE else None


def _configured() -> bool:
    """Whether an application set a tracer or meter provider: else nothing is recorded.

    Checked per send rather than once, so that a provider set after import counts.
    """
    if not AVAILABLE:
        return False
    if _FAST_CHECK:
        if trace._TRACER_PROVIDER is not None or _metrics_internal._METER_PROVIDER is not None:
            return True
        if not _PROVIDERS_FROM_ENV:
            return False
    return _configured_by_the_api()


def _configured_by_the_api() -> bool:
    """The same question asked through the API's public getters (which load env providers)."""
    if not isinstance(trace.get_tracer_provider(), ProxyTracerProvider):
        return True
    return not isinstance(metrics.get_meter_provider(), _PROXY_METER_PROVIDERS)


def _tracer() -> trace.Tracer:
    # The API caches nothing per scope; the SDK's provider makes a new Tracer per call,
    # so keep the proxy, which looks up the real one once a provider is set.
    global _cached_tracer  # noqa: PLW0603 - made once, on first use
    if _cached_tracer is None:
        _cached_tracer = trace.get_tracer(SCOPE_NAME, __version__)
    return _cached_tracer


_cached_tracer: trace.Tracer | None = None


def _error_type(error: BaseException) -> str:
    return type(error).__name__


class SendTelemetry:
    """The span and the measurements of one send: made by `start_send`, ended once.

    `Sender.send` calls `retry` for each retry the policy decided on, sets `attempts`
    and `http_status` as it goes, and ends it with `sent()` or `failed(error)`.
    """

    __slots__ = ("_span", "_started", "_token", "attempts", "http_status", "retries", "waited")

    def __init__(self, account_id: str, from_: str | None, to: str | None) -> None:
        self._started = time.monotonic()
        self.attempts = 0
        self.retries = 0
        self.waited = 0.0
        self.http_status: int | None = None
        # Given at the start, not set after: the sampler sees them, and each set_attribute
        # of the SDK's takes the span's lock.
        attributes = {ATTR_ACCOUNT_ID: account_id}
        if from_ is not None and to is not None:
            attributes[ATTR_FROM] = from_
            attributes[ATTR_TO] = to
        span = _tracer().start_span(SEND_SPAN, kind=SpanKind.CLIENT, attributes=attributes)
        self._span = span
        # Current while the send runs, so that spans of an instrumented transport
        # (aiohttp's, say) are its children.
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def retry(self, error: VoipNumberError, wait: float) -> None:
        """A failed attempt that will be retried after `wait` seconds: an event and a count."""
        self.retries += 1
        self.waited += wait
        reason = _error_type(error)
        assert _instruments is not None
        _instruments.retries.add(1, {ATTR_REASON: reason})
        if isinstance(error, RateLimitError):
            _instruments.pauses.add(1)
        span = self._span
        if span.is_recording():
            attributes: dict[str, str | int | float] = {
                ATTR_REASON: reason,
                ATTR_WAIT: wait,
                ATTR_ATTEMPT: self.attempts,
            }
            if error.http_status is not None:
                attributes[ATTR_HTTP_STATUS] = error.http_status
            span.add_event("retry", attributes)

    def sent(self) -> None:
        """End the send as accepted by the service."""
        assert _instruments is not None
        _instruments.sent.add(1)
        self._end(OUTCOME_SENT, None)

    def failed(self, error: BaseException) -> None:
        """End the send with the error it raises (or the cancellation that ended it)."""
        assert _instruments is not None
        outcome = _error_type(error)
        if isinstance(error, VoipNumberError):
            self.http_status = error.http_status
            if error.attempts:
                self.attempts = error.attempts
            if error.may_have_been_sent:
                _instruments.unknown.add(1)
            else:
                _instruments.failed.add(1, {ATTR_ERROR_TYPE: outcome})
        elif isinstance(error, asyncio.CancelledError):
            outcome = OUTCOME_CANCELLED  # a stop or a timeout of the caller's, not a failure
        else:
            # Not one of ours (a transport's or a pacer's bug): it fails the send all the same.
            _instruments.failed.add(1, {ATTR_ERROR_TYPE: outcome})
        self._end(outcome, None if outcome == OUTCOME_CANCELLED else error)

    def stopped(self) -> None:
        """End the send as stopped by its bulk run before an attempt: nothing was sent."""
        self._end(OUTCOME_NOT_SENT, None)

    def _end(self, outcome: str, error: BaseException | None) -> None:
        assert _instruments is not None
        otel_context.detach(self._token)
        elapsed = time.monotonic() - self._started
        _instruments.duration.record(
            elapsed, _SENT_ATTRIBUTES if outcome == OUTCOME_SENT else {ATTR_OUTCOME: outcome}
        )
        span = self._span
        if span.is_recording():
            attributes: dict[str, str | int | float | bool] = {
                ATTR_OUTCOME: outcome,
                ATTR_ATTEMPTS: self.attempts,
                ATTR_RETRIED: self.retries > 0,
                ATTR_WAITED: self.waited,
            }
            if self.http_status is not None:
                attributes[ATTR_HTTP_STATUS] = self.http_status
            if error is not None:
                attributes[ATTR_ERROR_TYPE] = outcome
                # The class only: an error's message may quote what the service echoed.
                span.set_status(Status(StatusCode.ERROR, outcome))
            span.set_attributes(attributes)  # one call: the SDK takes its lock once
        span.end()


def start_send(account_id: str, from_: str | None, to: str | None) -> SendTelemetry | None:
    """The telemetry of a send starting now; `None` when nothing is configured to record it.

    Pass `from_` and `to` only when the client opted in to phone numbers.
    """
    return SendTelemetry(account_id, from_, to) if _configured() else None


class BulkSpan:
    """The parent span of one `send_many` run: each message's send span is its child.

    The run calls `activate()` around starting its worker tasks, which copy the
    current context when created, and `finish(summary)` once, at the end.
    """

    __slots__ = ("_span",)

    def __init__(self, account_id: str, concurrency: int) -> None:
        span = _tracer().start_span(BULK_SPAN, kind=SpanKind.INTERNAL)
        if span.is_recording():
            span.set_attribute(ATTR_ACCOUNT_ID, account_id)
            span.set_attribute("voipnumber.bulk.concurrency", concurrency)
        self._span = span

    @contextmanager
    def activate(self) -> Iterator[None]:
        """The run's span is current inside: tasks created here inherit it."""
        token = otel_context.attach(trace.set_span_in_context(self._span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def finish(self, summary: BulkSummary, error: BaseException | None = None) -> None:
        """End the run's span with its summary (and the error that ended it, if one did)."""
        self._end(summary, None if error is None else _error_type(error))

    def abandon(self, summary: BulkSummary) -> None:
        """End the span of a run its caller dropped unclosed: `error.type` `abandoned`."""
        self._end(summary, ABANDONED)

    def _end(self, summary: BulkSummary, error_type: str | None) -> None:
        span = self._span
        if span.is_recording():
            span.set_attributes(
                {
                    "voipnumber.bulk.results": summary.results,
                    "voipnumber.bulk.sent": summary.sent,
                    "voipnumber.bulk.already_sent": summary.already_sent,
                    "voipnumber.bulk.failed": summary.failed_total,
                    "voipnumber.bulk.unknown": summary.unknown,
                    "voipnumber.bulk.not_sent": summary.not_sent,
                    "voipnumber.bulk.attempts": summary.attempts,
                    "voipnumber.bulk.rate_limited": summary.rate_limited,
                    "voipnumber.bulk.duration_s": summary.elapsed_s,
                }
            )
            if error_type is not None:
                span.set_attribute(ATTR_ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()


def start_bulk(account_id: str, concurrency: int) -> BulkSpan | None:
    """The span of a bulk run starting now; `None` when nothing is configured to record it."""
    return BulkSpan(account_id, concurrency) if _configured() else None


@contextmanager
def delivery_span() -> Iterator[None]:
    """A `voipnumber.webhook.receive` span around one delivery, current inside.

    Current, so that spans the handler makes are its children, and `record_delivery`
    finds it. Nothing of the request (its URL may carry the secret) is recorded.
    """
    if not _configured():
        yield
        return
    with _tracer().start_as_current_span(
        # Neither the exception nor its message: it may quote the delivery.
        DELIVERY_SPAN,
        kind=SpanKind.SERVER,
        record_exception=False,
        set_status_on_exception=False,
    ):
        yield


def record_delivery(
    outcome: str, *, reason: str | None = None, http_status: int = 200, mdr_id: str | None = None
) -> None:
    """Count a delivery's outcome, and say it on the current delivery span.

    Args:
        outcome: `accepted`, `duplicate` or `refused`.
        reason: Why it was refused (the error code answered: `invalid_secret`, ...).
        http_status: The status answered.
        mdr_id: The message's id, once the body was read.
    """
    if not _configured():
        return
    assert _instruments is not None
    if outcome == "accepted":
        _instruments.accepted.add(1)
    elif outcome == "duplicate":
        _instruments.duplicates.add(1)
    else:
        _instruments.refused.add(1, {ATTR_REFUSED: reason or "unknown"})
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(ATTR_OUTCOME, outcome)
        span.set_attribute(ATTR_HTTP_STATUS, http_status)
        if reason is not None:
            span.set_attribute(ATTR_REFUSED, reason)
        if mdr_id is not None:
            span.set_attribute(ATTR_MDR_ID, mdr_id)
        if http_status >= 500:
            span.set_status(Status(StatusCode.ERROR, reason))
