"""The sandbox's idempotency store, without HTTP: first answers by account and key."""

from __future__ import annotations

import uuid

from voipnumber_async.sandbox._idempotency import IdempotencyStore, key_slot

BODY = b'{"from": "+447445459147", "to": "+447483866525", "body": "Thank you"}'


def test_the_first_answer_comes_back_whole_and_knows_its_body() -> None:
    store = IdempotencyStore(10)
    message_id = uuid.uuid4()
    store.remember(key_slot("demo-account", "k1"), BODY, message_id, 1716193717)

    first = store.recall(key_slot("demo-account", "k1"))

    assert first is not None
    assert (first.message_id, first.timestamp_s) == (str(message_id), 1716193717)
    assert first.is_for(BODY)
    assert not first.is_for(BODY.replace(b"Thank", b"Thanks"))


def test_a_key_is_the_accounts_own() -> None:
    store = IdempotencyStore(10)
    store.remember(key_slot("demo-account", "k1"), BODY, uuid.uuid4(), 0)

    assert store.recall(key_slot("other-account", "k1")) is None
    assert store.recall(key_slot("demo-account", "k2")) is None


def test_beyond_its_size_the_oldest_key_is_forgotten() -> None:
    store = IdempotencyStore(2)
    for key in ("k1", "k2", "k3"):
        store.remember(key_slot("demo-account", key), BODY, uuid.uuid4(), 0)

    assert len(store) == 2
    assert store.recall(key_slot("demo-account", "k1")) is None
    assert store.recall(key_slot("demo-account", "k3")) is not None
