"""OpenTelemetry: the spans and metrics a send, a bulk run and a delivery record.

Each test gets an SDK of its own (in-memory exporters) installed as the global
providers, and sends to the real sandbox; what it asserts is what the exporters got.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest
from _support import FROM, TO
from aiohttp import web
from opentelemetry import trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from voipnumber_async import (
    AsyncVoipNumber,
    NumberOwnershipError,
    OutcomeUnknownError,
    ServiceUnavailableError,
    _telemetry,
)
from voipnumber_async.sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, Fault, Sandbox
from voipnumber_async.webhooks import InboundMessage, create_app
from voipnumber_sync import VoipNumber

NUMBER = "+447476553275"
SECRET = "s3cr3t-0f-the-hook"
BODY = "the body, which telemetry must never hold: 7c1d"


@attrs.define
class Recorded:
    """What the test's SDK exported: finished spans and metric points."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        (only,) = self.spans(name)
        return only

    def points(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def count(self, name: str, attributes: dict[str, str] | None = None) -> float:
        """The sum of a counter's points whose attributes include `attributes`."""
        wanted = (attributes or {}).items()
        return sum(
            point.value
            for point in self.points().get(name, [])
            if all(point.attributes.get(key) == value for key, value in wanted)
        )


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """A fresh SDK as the global tracer and meter providers, for this test only.

    Patched in rather than set with `set_tracer_provider`: the API lets a process set
    each provider once, and every test wants its own exporters. `_telemetry`'s tracer
    and instruments are made anew, as they would be in a process that set its SDK first.
    """
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", tracer_provider)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", meter_provider)
    monkeypatch.setattr(_telemetry, "_cached_tracer", None)
    monkeypatch.setattr(_telemetry, "_instruments", _telemetry._Instruments())
    yield Recorded(exporter, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[InboundMessage], list[int]]]:
    """A running `create_app` with the secret: its URL, what it handled, failures to make."""
    handled: list[InboundMessage] = []
    fail: list[int] = []

    async def handle(message: InboundMessage) -> None:
        if fail:
            fail.pop()
            raise RuntimeError("the database is down")
        handled.append(message)

    runner = web.AppRunner(create_app(handle, secret=SECRET), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", handled, fail
    await runner.cleanup()


async def test_a_send_is_one_client_span_with_its_outcome_attempts_and_status(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    await client.sms.send(FROM, TO, BODY)

    span = otel.span("voipnumber.sms.send")
    assert span.kind is SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "voipnumber.account_id": DEMO_ACCOUNT_ID,
        "voipnumber.outcome": "sent",
        "voipnumber.attempts": 1,
        "voipnumber.retried": False,
        "voipnumber.waited_s": 0.0,
        "http.response.status_code": 200,
    }
    assert span.events == ()
    assert span.status.status_code is StatusCode.UNSET


async def test_each_retry_is_an_event_with_its_reason_and_wait(
    otel: Recorded, client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.unavailable(times=2))

    await client.sms.send(FROM, TO, BODY)

    span = otel.span("voipnumber.sms.send")
    attributes = span.attributes or {}
    assert attributes["voipnumber.attempts"] == 3
    assert attributes["voipnumber.retried"] is True
    assert attributes["voipnumber.outcome"] == "sent"
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert [name for name, _ in events] == ["retry", "retry"]
    assert [e["voipnumber.retry.attempt"] for _, e in events] == [1, 2]
    assert {e["voipnumber.retry.reason"] for _, e in events} == {"ServiceUnavailableError"}
    assert {e["http.response.status_code"] for _, e in events} == {503}
    waits = [e["voipnumber.retry.wait_s"] for _, e in events]
    assert attributes["voipnumber.waited_s"] == pytest.approx(sum(waits))
    assert (
        otel.count("voipnumber.sms.retries", {"voipnumber.retry.reason": "ServiceUnavailableError"})
        == 2
    )


async def test_a_429_waited_out_counts_a_pause_and_a_retry(
    otel: Recorded, client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.rate_limited(retry_after=0.1))

    await client.sms.send(FROM, TO, BODY)

    (event,) = otel.span("voipnumber.sms.send").events
    assert event.attributes is not None
    assert event.attributes["voipnumber.retry.reason"] == "RateLimitError"
    assert event.attributes["http.response.status_code"] == 429
    assert otel.count("voipnumber.sms.rate_limit_pauses") == 1
    assert otel.count("voipnumber.sms.retries", {"voipnumber.retry.reason": "RateLimitError"}) == 1
    assert otel.count("voipnumber.sms.sent") == 1


async def test_a_rejected_send_has_its_error_type_and_counts_as_failed(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    with pytest.raises(NumberOwnershipError):
        await client.sms.send("+447700900999", TO, BODY)  # another account's number

    span = otel.span("voipnumber.sms.send")
    attributes = span.attributes or {}
    assert attributes["voipnumber.outcome"] == "NumberOwnershipError"
    assert attributes["error.type"] == "NumberOwnershipError"
    assert attributes["http.response.status_code"] == 403
    assert attributes["voipnumber.attempts"] == 1
    assert span.status.status_code is StatusCode.ERROR
    assert otel.count("voipnumber.sms.failed", {"error.type": "NumberOwnershipError"}) == 1
    assert otel.count("voipnumber.sms.sent") == 0


async def test_a_send_that_ran_out_of_retries_has_its_attempts(
    otel: Recorded, client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.unavailable(times=None))

    with pytest.raises(ServiceUnavailableError) as caught:
        await client.sms.send(FROM, TO, BODY)

    attributes = otel.span("voipnumber.sms.send").attributes or {}
    assert attributes["voipnumber.attempts"] == caught.value.attempts
    assert attributes["error.type"] == "ServiceUnavailableError"
    assert otel.count("voipnumber.sms.failed", {"error.type": "ServiceUnavailableError"}) == 1


async def test_an_outcome_unknown_is_counted_apart_from_failures(
    otel: Recorded, client: AsyncVoipNumber, sandbox: Sandbox
) -> None:
    sandbox.inject(Fault.server_error(500))

    with pytest.raises(OutcomeUnknownError):
        await client.sms.send(FROM, TO, BODY)

    assert otel.span("voipnumber.sms.send").attributes["error.type"] == "OutcomeUnknownError"  # type: ignore[index]
    assert otel.count("voipnumber.sms.outcome_unknown") == 1
    assert otel.count("voipnumber.sms.failed") == 0


async def test_metrics_count_the_messages_sent_and_the_duration_of_each_send(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    for _ in range(3):
        await client.sms.send(FROM, TO, BODY)

    assert otel.count("voipnumber.sms.sent") == 3
    (histogram,) = otel.points()["voipnumber.sms.send.duration"]
    assert histogram.count == 3
    assert dict(histogram.attributes) == {"voipnumber.outcome": "sent"}
    assert 0 < histogram.sum < 10


async def test_a_send_in_an_applications_span_is_its_child(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    with trace.get_tracer("app").start_as_current_span("checkout") as outer:
        await client.sms.send(FROM, TO, BODY)

    send = otel.span("voipnumber.sms.send")
    assert send.parent is not None
    assert send.parent.span_id == outer.get_span_context().span_id


async def test_send_many_is_one_parent_span_with_each_messages_send_as_its_child(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    messages = [(FROM, TO, f"{BODY} {n}") for n in range(5)]
    messages.append((FROM, "not a number", BODY))  # invalid: a failure, never sent
    with trace.get_tracer("app").start_as_current_span("campaign") as outer:
        async with client.sms.send_many(messages, concurrency=3) as results:
            async for _ in results:
                pass

    bulk = otel.span("voipnumber.sms.send_many")
    sends = otel.spans("voipnumber.sms.send")
    assert len(sends) == 5
    context = bulk.get_span_context()
    assert context is not None
    assert {s.parent.span_id for s in sends if s.parent} == {context.span_id}
    assert {s.get_span_context().trace_id for s in sends} == {context.trace_id}  # type: ignore[union-attr]
    assert bulk.parent is not None
    assert bulk.parent.span_id == outer.get_span_context().span_id
    attributes = bulk.attributes or {}
    assert attributes["voipnumber.bulk.results"] == 6
    assert attributes["voipnumber.bulk.sent"] == 5
    assert attributes["voipnumber.bulk.failed"] == 1
    assert attributes["voipnumber.bulk.unknown"] == 0
    assert attributes["voipnumber.bulk.not_sent"] == 0
    assert attributes["voipnumber.bulk.attempts"] == 5
    assert attributes["voipnumber.bulk.concurrency"] == 3
    assert attributes["voipnumber.bulk.duration_s"] > 0
    assert bulk.end_time is not None
    assert max(s.end_time or 0 for s in sends) <= bulk.end_time
    assert otel.count("voipnumber.sms.sent") == 5


async def test_a_bulk_run_left_early_ends_its_span_with_the_summary_so_far(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    messages = ((FROM, TO, BODY) for _ in range(1000))
    async with client.sms.send_many(messages, concurrency=2) as results:
        async for _ in results:
            break

    attributes = otel.span("voipnumber.sms.send_many").attributes or {}
    assert attributes["voipnumber.bulk.results"] >= 1  # type: ignore[operator]
    assert attributes["voipnumber.bulk.results"] < 1000  # type: ignore[operator]
    # The sends the stop cut short are not failures of their messages.
    outcomes = {
        (s.attributes or {})["voipnumber.outcome"] for s in otel.spans("voipnumber.sms.send")
    }
    assert outcomes <= {"sent", "cancelled", "not_sent"}
    assert otel.count("voipnumber.sms.failed") == 0


async def test_a_bulk_run_dropped_unclosed_still_ends_its_span_as_abandoned(
    otel: Recorded, client: AsyncVoipNumber
) -> None:
    results = client.sms.send_many(((FROM, TO, BODY) for _ in range(1000)), concurrency=2)
    await results.__anext__()
    run = weakref.ref(results)
    del results

    # Collected once its window of unread results is full and nothing runs: until then
    # the loop's sockets keep it alive.
    deadline = time.monotonic() + 30
    with pytest.warns(ResourceWarning, match="without being closed"):
        while run() is not None:
            assert time.monotonic() < deadline, "the dropped run was never collected"
            gc.collect()
            await asyncio.sleep(0.01)

    (span,) = otel.spans("voipnumber.sms.send_many")
    attributes = span.attributes or {}
    assert attributes["error.type"] == "abandoned"
    assert span.status.status_code is StatusCode.ERROR
    assert 1 <= attributes["voipnumber.bulk.results"] < 1000  # type: ignore[operator]


async def test_a_delivery_is_a_server_span_and_counts_as_accepted(
    otel: Recorded, receiver: tuple[str, list[InboundMessage], list[int]]
) -> None:
    base, handled, _ = receiver
    async with Sandbox(webhooks={NUMBER: f"{base}/webhooks/voipnumber?secret={SECRET}"}) as sb:
        delivery = await sb.deliver_inbound(NUMBER, BODY)

    assert delivery.status == 200
    span = otel.span("voipnumber.webhook.receive")
    assert span.kind is SpanKind.SERVER
    assert dict(span.attributes or {}) == {
        "voipnumber.outcome": "accepted",
        "http.response.status_code": 200,
        "voipnumber.mdr_id": delivery.message.mdr_id,
    }
    assert otel.count("voipnumber.webhook.accepted") == 1
    assert len(handled) == 1


async def test_a_redelivery_counts_as_a_duplicate(
    otel: Recorded, receiver: tuple[str, list[InboundMessage], list[int]]
) -> None:
    base, _, _ = receiver
    async with Sandbox(webhooks={NUMBER: f"{base}/webhooks/voipnumber?secret={SECRET}"}) as sb:
        first = await sb.deliver_inbound(NUMBER, BODY)
        await sb.redeliver(first)

    outcomes = [s.attributes["voipnumber.outcome"] for s in otel.spans()]  # type: ignore[index]
    assert outcomes == ["accepted", "duplicate"]
    assert otel.count("voipnumber.webhook.accepted") == 1
    assert otel.count("voipnumber.webhook.duplicates") == 1


async def test_a_refused_delivery_is_counted_by_its_reason(
    otel: Recorded, receiver: tuple[str, list[InboundMessage], list[int]]
) -> None:
    base, handled, _ = receiver
    async with Sandbox(webhooks={NUMBER: f"{base}/webhooks/voipnumber?secret=guess"}) as sb:
        delivery = await sb.deliver_inbound(NUMBER, BODY)

    assert delivery.status == 403
    attributes = otel.span("voipnumber.webhook.receive").attributes or {}
    assert attributes["voipnumber.outcome"] == "refused"
    assert attributes["voipnumber.webhook.reason"] == "invalid_secret"
    assert attributes["http.response.status_code"] == 403
    assert (
        otel.count("voipnumber.webhook.refused", {"voipnumber.webhook.reason": "invalid_secret"})
        == 1
    )
    assert handled == []


async def test_a_handler_that_fails_makes_an_error_span_and_a_refusal(
    otel: Recorded, receiver: tuple[str, list[InboundMessage], list[int]]
) -> None:
    base, _, fail = receiver
    fail.append(1)
    async with Sandbox(webhooks={NUMBER: f"{base}/webhooks/voipnumber?secret={SECRET}"}) as sb:
        delivery = await sb.deliver_inbound(NUMBER, BODY)

    assert delivery.status == 500
    span = otel.span("voipnumber.webhook.receive")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["voipnumber.webhook.reason"] == "handler_failed"
    assert (
        otel.count("voipnumber.webhook.refused", {"voipnumber.webhook.reason": "handler_failed"})
        == 1
    )


def every_recorded_value(otel: Recorded) -> list[str]:
    """Every attribute value (and key) of every span, event, resource-free point, as text."""
    values: list[str] = []
    for span in otel.spans():
        for attributes in [span.attributes, *(event.attributes for event in span.events)]:
            values += [f"{k}={v}" for k, v in (attributes or {}).items()]
        values += [span.name, str(span.status.description)]
    for name, points in otel.points().items():
        values += [f"{name} {k}={v}" for point in points for k, v in point.attributes.items()]
    return values


async def test_nothing_recorded_holds_the_token_the_secret_a_body_or_a_number(
    otel: Recorded, client: AsyncVoipNumber, sandbox: Sandbox,
    receiver: tuple[str, list[InboundMessage], list[int]],
) -> None:  # fmt: skip
    sandbox.inject(Fault.unavailable())
    await client.sms.send(FROM, TO, BODY)
    with pytest.raises(NumberOwnershipError):
        await client.sms.send("+447700900999", TO, BODY)
    async with client.sms.send_many([(FROM, TO, BODY)] * 3) as results:
        async for _ in results:
            pass
    base, _, _ = receiver
    async with Sandbox(webhooks={NUMBER: f"{base}/webhooks/voipnumber?secret={SECRET}"}) as sb:
        await sb.deliver_inbound(NUMBER, BODY, from_=TO)
        sb.webhooks[NUMBER] = f"{base}/webhooks/voipnumber?secret=guess"
        await sb.deliver_inbound(NUMBER, BODY, from_=TO)

    recorded = every_recorded_value(otel)
    assert len(otel.spans()) == 8  # 5 sends, 1 run, 2 deliveries: all of them walked
    for forbidden in (DEMO_API_TOKEN, SECRET, BODY, BODY[:20], FROM, TO, NUMBER):
        assert not [value for value in recorded if forbidden in value], forbidden


async def test_phone_numbers_are_on_the_span_only_when_the_client_opted_in(
    otel: Recorded, sandbox: Sandbox
) -> None:
    settings = sandbox.client_settings()
    async with AsyncVoipNumber(**settings, telemetry_phone_numbers=True) as opted_in:
        await opted_in.sms.send(FROM, TO, BODY)
        await opted_in.with_options(timeout=5).sms.send(FROM, TO, BODY)
        async with opted_in.sms.send_many([(FROM, TO, BODY)]) as results:
            async for _ in results:
                pass
    async with AsyncVoipNumber(**settings) as default:
        await default.sms.send(FROM, TO, BODY)

    *opted, plain = otel.spans("voipnumber.sms.send")
    assert len(opted) == 3
    for span in opted:
        assert (span.attributes or {})["voipnumber.from"] == FROM
        assert (span.attributes or {})["voipnumber.to"] == TO
    assert "voipnumber.from" not in (plain.attributes or {})
    assert "voipnumber.to" not in (plain.attributes or {})


def test_the_sync_client_carries_the_opt_in_and_records_its_sends(otel: Recorded) -> None:
    with Sandbox().serve_in_thread() as sandbox:
        settings = sandbox.client_settings()
        with VoipNumber(**settings, telemetry_phone_numbers=True) as client:
            assert client.telemetry_phone_numbers is True
            assert client.with_options(max_retries=0).telemetry_phone_numbers is True
            client.sms.send(FROM, TO, BODY)
        with VoipNumber(**settings) as client:
            assert client.telemetry_phone_numbers is False

    attributes = otel.span("voipnumber.sms.send").attributes or {}
    assert attributes["voipnumber.to"] == TO
    assert attributes["voipnumber.outcome"] == "sent"


def test_a_sync_send_in_an_applications_span_is_its_child(otel: Recorded) -> None:
    with (
        Sandbox().serve_in_thread() as sandbox,
        VoipNumber(**sandbox.client_settings()) as client,
        trace.get_tracer("app").start_as_current_span("checkout") as outer,
    ):
        client.sms.send(FROM, TO, BODY)
        with client.sms.send_many([(FROM, TO, BODY)] * 2) as results:
            assert all(result.ok for result in results)

    outer_id = outer.get_span_context().span_id
    send, *bulk_sends = otel.spans("voipnumber.sms.send")
    run = otel.span("voipnumber.sms.send_many")
    assert send.parent is not None
    assert send.parent.span_id == outer_id
    assert run.parent is not None
    assert run.parent.span_id == outer_id
    assert [s.parent.span_id for s in bulk_sends if s.parent] == [run.context.span_id] * 2


async def test_without_an_sdk_configured_nothing_is_started(client: AsyncVoipNumber) -> None:
    assert _telemetry.AVAILABLE
    assert _telemetry.start_send(DEMO_ACCOUNT_ID, None, None) is None
    assert _telemetry.start_bulk(DEMO_ACCOUNT_ID, 1) is None
    assert (await client.sms.send(FROM, TO, BODY)).id


def test_without_opentelemetry_installed_the_sdk_sends_and_records_nothing() -> None:
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from voipnumber_async import AsyncVoipNumber, _telemetry
from voipnumber_async.testing import MockResponse, MockTransport
assert not _telemetry.AVAILABLE
assert _telemetry.start_send("a", None, None) is None
with _telemetry.delivery_span():
    _telemetry.record_delivery("accepted")
async def main():
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("a", "t", transport=transport) as client:
        print((await client.sms.send("+447445459147", "+447483866525", "hi")).status)
asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "queued"


def test_the_fast_check_agrees_with_the_apis_own_getters(monkeypatch: pytest.MonkeyPatch) -> None:
    # _configured reads the API's globals, not its getters (which read os.environ).
    assert _telemetry._configured() is _telemetry._configured_by_the_api() is False
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider())
    assert _telemetry._configured() is _telemetry._configured_by_the_api() is True
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(metrics_internal, "_METER_PROVIDER", MeterProvider())
    assert _telemetry._configured() is _telemetry._configured_by_the_api() is True
