"""Cutting a campaign into chunks, and a chunk's trip through a task queue as JSON."""

from __future__ import annotations

import json

import pytest

from voipnumber_async import ConfigurationError, OutgoingMessage
from voipnumber_async.campaigns import (
    Chunk,
    ChunkOptions,
    chunks_of,
    fingerprint,
)

SENDER = "+447445459147"


def rows(count: int) -> list[tuple[str, str, str]]:
    return [(SENDER, f"+4474{n:08d}", f"message {n}") for n in range(count)]


def test_chunks_cover_every_position_once_in_order() -> None:
    chunks = list(chunks_of("spring", rows(2500), chunk_size=1000))
    assert [(chunk.offset, len(chunk.messages)) for chunk in chunks] == [
        (0, 1000),
        (1000, 1000),
        (2000, 500),
    ]
    assert [m.to for chunk in chunks for m in chunk.messages] == [to for _, to, _ in rows(2500)]


def test_chunks_read_the_input_lazily() -> None:
    taken = []

    def messages():  # a generator that records how far it was read
        for row in rows(10_000):
            taken.append(row)
            yield row

    first = next(chunks_of("spring", messages(), chunk_size=100))
    assert len(first.messages) == 100
    assert len(taken) == 100


def test_a_chunk_survives_json_with_its_keys() -> None:
    messages = [
        OutgoingMessage(from_=SENDER, to="+447400000001", body="héllo 👋"),
        OutgoingMessage(from_=SENDER, to="+447400000002", body="b", idempotency_key="mine"),
    ]
    chunk = Chunk(campaign="spring", offset=4000, messages=messages)
    arguments = json.loads(json.dumps(chunk.to_task()))
    assert Chunk.from_task(*arguments) == chunk


@pytest.mark.parametrize(
    "arguments",
    [
        ("spring", -1, []),
        ("spring", True, []),
        ("spring", "0", []),
        ("spring", 0, [["only", "two"]]),
        ("spring", 0, "rows"),
        ("", 0, []),
        (7, 0, []),
    ],
)
def test_a_task_that_is_not_a_chunk_is_refused(arguments: tuple[object, ...]) -> None:
    with pytest.raises(ConfigurationError):
        Chunk.from_task(*arguments)


@pytest.mark.parametrize("name", ["", " spring", "spring\n", "x" * 201, None, "tab\there"])
def test_a_chunk_of_a_campaign_that_cannot_be_named_is_refused(name: object) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Chunk.from_task(name, 0, [])
    assert raised.value.field == "campaign"


def test_the_fingerprint_tells_inputs_apart_and_is_stable() -> None:
    one = [OutgoingMessage.coerce(row) for row in rows(3)]
    assert fingerprint(one) == fingerprint(list(one))
    assert fingerprint(one) != fingerprint(one[:2])
    assert fingerprint(one) != fingerprint(
        [*one[:2], OutgoingMessage(from_=SENDER, to=one[2].to, body="other")]
    )
    # Field boundaries count: ("ab", "c") is not ("a", "bc").
    a = OutgoingMessage(from_=SENDER, to="+1", body="23")
    b = OutgoingMessage(from_=SENDER, to="+12", body="3")
    assert fingerprint([a]) != fingerprint([b])


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"rate": 0}, "rate"),
        ({"rate": True}, "rate"),
        ({"rate": None}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"rate": 10, "concurrency": 0}, "concurrency"),
    ],
)
def test_bad_chunk_options_are_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        ChunkOptions(**options)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_chunk_options_survive_json() -> None:
    options = ChunkOptions(rate=42.5, concurrency=7, resend_unknown=True)
    assert ChunkOptions(**json.loads(json.dumps(options.to_task()))) == options
