"""The wire format: dates, Retry-After, envelopes and the converter, without a network."""

from __future__ import annotations

import os
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest
from _support import fixture_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from voipnumber_async import SentMessage, UnexpectedResponseError
from voipnumber_async._wire.answers import (
    Answer,
    decode_send_answer,
    encode_send_success,
    parse_retry_after,
)
from voipnumber_async._wire.convert import converter
from voipnumber_async._wire.dates import format_service_datetime, parse_service_datetime
from voipnumber_async._wire.requests import new_idempotency_key

EXPECTED = SentMessage(
    id="feefcc83-d6ae-4580-b4dc-6ee16b37ff04",
    status="queued",
    body="Thank you",
    timestamp_s=1716193717,
    created=datetime(2024, 5, 20, 8, 28, 37, tzinfo=timezone.utc),
)


@pytest.mark.parametrize("name", ["send-ok.json", "send-ok-nested.json"])
def test_both_documented_success_envelopes_decode_to_the_exact_message(name: str) -> None:
    assert decode_send_answer(Answer(200, {}, fixture_bytes(name))) == EXPECTED


def test_created_is_the_same_instant_as_timestamp_s_in_the_fixture() -> None:
    message = decode_send_answer(Answer(200, {}, fixture_bytes("send-ok.json")))
    assert message.created.timestamp() == message.timestamp_s


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20 May 2024 08:28:37", datetime(2024, 5, 20, 8, 28, 37, tzinfo=timezone.utc)),
        ("25 November 2026 10:00:00", datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)),
        ("25 Nov 2026 10:00:00", datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)),
        ("1 sept 2025 23:59:59", datetime(2025, 9, 1, 23, 59, 59, tzinfo=timezone.utc)),
    ],
)
def test_service_dates_parse_with_full_or_short_months(text: str, expected: datetime) -> None:
    assert parse_service_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "20 Mai 2024 08:28:37", "2024-05-20T08:28:37", "20 May 2024"])
def test_malformed_service_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="20 May 2024 08:28:37"):
        parse_service_datetime(text)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # a day inside year 1 in every offset
        max_value=datetime(9999, 12, 30),
        timezones=st.timezones(),
    ).map(lambda value: value.replace(microsecond=0))
)
def test_service_dates_format_as_strftime_would_and_parse_back(value: datetime) -> None:
    utc = value.astimezone(timezone.utc)
    text = format_service_datetime(value)
    day, _, year, clock = text.split()
    assert (day, year, clock) == (str(utc.day), str(utc.year), f"{utc:%H:%M:%S}")
    assert parse_service_datetime(text) == utc  # (an ambiguous local time != any other zone)


def test_the_converter_round_trips_a_message_with_extra_fields() -> None:
    message = SentMessage(
        id="i",
        status="delivered",
        body="b",
        timestamp_s=1716193717,
        created=datetime(2024, 5, 20, 8, 28, 37, tzinfo=timezone.utc),
        extra={"segments": 2, "price": {"amount": "0.04"}},
    )
    wire = converter.unstructure(message)

    assert wire["created"] == "20 May 2024 08:28:37"
    assert wire["segments"] == 2
    assert converter.structure(wire, SentMessage) == message
    assert format_service_datetime(message.created) == "20 May 2024 08:28:37"


def test_the_sandboxs_success_encoding_decodes_in_both_envelopes() -> None:
    for nested in (False, True):
        assert (
            decode_send_answer(Answer(200, {}, encode_send_success(EXPECTED, nested=nested)))
            == EXPECTED
        )


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode("utf-8-sig"),  # with a byte order mark
        lambda text: text.encode("utf-16"),
    ],
    ids=["utf-8 with BOM", "utf-16"],
)
def test_a_success_in_another_json_encoding_still_decodes(encode: Any) -> None:
    # UTF-8 is read first, the cheap way; what it cannot read goes to json.loads.
    text = fixture_bytes("send-ok.json").decode()
    assert decode_send_answer(Answer(200, {}, encode(text))) == EXPECTED


def test_a_success_that_is_not_json_is_an_unexpected_response() -> None:
    with pytest.raises(UnexpectedResponseError) as caught:
        decode_send_answer(Answer(200, {}, b"\xff\xfe not json at all"))
    assert caught.value.http_status == 200


def test_a_success_missing_a_field_is_an_unexpected_response() -> None:
    with pytest.raises(UnexpectedResponseError, match="timestamp_s"):
        decode_send_answer(
            Answer(
                200,
                {},
                b'{"status":"OK","result":{"id":"x","status":"queued",'
                b'"body":"b","created":"20 May 2024 08:28:37"}}',
            )
        )


def test_sent_messages_are_frozen_and_hashable() -> None:
    with pytest.raises(AttributeError):
        EXPECTED.status = "delivered"  # type: ignore[misc]
    assert hash(EXPECTED) == hash(
        decode_send_answer(Answer(200, {}, fixture_bytes("send-ok.json")))
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("soon", None),
        ("nan", None),
        ("Wed, 25 Nov 2026 12:00:10 GMT", 10.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(
    header: str | None, expected: float | None
) -> None:
    now = datetime(2026, 11, 25, 12, 0, 0, tzinfo=timezone.utc).timestamp()
    assert parse_retry_after(header, now=now) == expected


def test_idempotency_keys_are_distinct_version_4_uuids_across_threads() -> None:
    # A guard for any future cache of random bytes: no two threads may share them.
    keys: list[list[str]] = [[] for _ in range(8)]

    def make(slot: list[str]) -> None:
        slot.extend(new_idempotency_key() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(slot,)) for slot in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [key for slot in keys for key in slot]
    assert len(set(every)) == len(every) == 16_000
    assert {uuid.UUID(key).version for key in every} == {4}
    assert all(str(uuid.UUID(key)) == key for key in every)  # the canonical form


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_repeats_its_parents_idempotency_keys() -> None:
    # A guard for any future cache of random bytes, which a child must not reuse.
    new_idempotency_key()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next keys, to the parent
        os.close(read_end)
        os.write(write_end, " ".join(new_idempotency_key() for _ in range(10)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_keys = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent_keys = {new_idempotency_key() for _ in range(10)}

    assert len(child_keys) == 10
    assert child_keys.isdisjoint(parent_keys)
