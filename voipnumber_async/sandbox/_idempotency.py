"""The sandbox's idempotency store: the first answer of each recent key, compactly.

A million keys must fit in a test machine's memory (`docs/sandbox.md` has the figure):
each is kept as 16 bytes standing for the account and the key, and 40 bytes of first
answer (the fingerprint of the request's body, the message's id, its timestamp). The
answer itself is rebuilt from them and the repeated request's body, which must be the
same (or the request is refused).
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from typing import Final, NamedTuple

from ._accounts import header_bytes
from ._records import RecentMap

__all__ = ["FirstAnswer", "IdempotencyStore", "key_slot"]

_STORED_ANSWER: Final = struct.Struct("<16s16sq")


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def key_slot(account_id: str, key: str) -> bytes:
    """16 bytes that stand for an account's key: less than half the memory of the pair."""
    return _digest(header_bytes(f"{account_id}\n{key}"))


class FirstAnswer(NamedTuple):
    """What the sandbox answered the first request with a key."""

    message_id: str
    timestamp_s: int
    fingerprint: bytes

    def is_for(self, body: bytes) -> bool:
        """Whether `body` is the body of that first request."""
        return self.fingerprint == _digest(body)


class IdempotencyStore:
    """The first answers of the `size` most recent keys (`None`: of all of them)."""

    def __init__(self, size: int | None) -> None:
        self._answers: RecentMap[bytes, bytes] = RecentMap(size)

    def recall(self, slot: bytes) -> FirstAnswer | None:
        """The first answer for the key `slot` stands for, if it is still remembered."""
        stored = self._answers.get(slot)
        if stored is None:
            return None
        fingerprint, message_id, timestamp_s = _STORED_ANSWER.unpack(stored)
        return FirstAnswer(str(uuid.UUID(bytes=message_id)), timestamp_s, fingerprint)

    def remember(self, slot: bytes, body: bytes, message_id: uuid.UUID, timestamp_s: int) -> None:
        """Keep the answer to the request with `body` as the first for `slot`'s key."""
        self._answers.put(slot, _STORED_ANSWER.pack(_digest(body), message_id.bytes, timestamp_s))

    def clear(self) -> None:
        """Forget every key."""
        self._answers.clear()

    def __len__(self) -> int:
        return len(self._answers)
