"""A campaign cut into chunks: runs of consecutive positions, each sent by one task.

A chunk travels through a task queue as JSON (`Chunk.to_task` / `Chunk.from_task`):
the campaign's name, its first position and its messages. It holds no credentials and
no Redis URL (either may hold a secret, and a broker keeps task arguments, and logs
them on failures): a worker takes both from its own environment.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import attrs

from .._bulk import MessageLike, OutgoingMessage
from .._errors import ConfigurationError
from ..redis._journal import check_campaign

__all__ = [
    "DEFAULT_CHUNK_CONCURRENCY",
    "DEFAULT_CHUNK_SIZE",
    "Chunk",
    "ChunkOptions",
    "chunks_of",
    "fingerprint",
]

#: Messages per chunk. Small enough that a chunk ends well within the broker's
#: visibility timeout at any account rate of 10 msg/s or more (1,000 s worst case
#: against Celery's default 3,600 s), large enough that a task's set-up (a client, a
#: pacer, a journal: a few milliseconds) is lost in its sending.
DEFAULT_CHUNK_SIZE: Final = 1000
#: Requests in flight at most for one chunk (one worker process): the shared pacer,
#: not this, sets the pace; this only has to cover the service's latency at the rate.
DEFAULT_CHUNK_CONCURRENCY: Final = 20


def _positive(name: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(
                f"{name} must be a positive integer, got {value!r}", field=name
            )

    return check


def _rate(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigurationError(
            f"rate must be the account's rate, a positive number of messages per second, "
            f"got {value!r}",
            field="rate",
        )


@attrs.frozen(kw_only=True)
class ChunkOptions:
    """How each chunk of a campaign is sent: the same for all of its chunks.

    Attributes:
        rate: The account's rate in messages per second, shared by every worker
            through Redis (`RedisPacer`): required, since a shared rate is what lets
            many workers send for one account. A 429 still pauses them all.
        concurrency: Requests in flight at most, per chunk.
        resend_unknown: Send again, with their original keys, the messages whose
            outcome is unknown (opt-in; see `send_many`).
    """

    rate: float = attrs.field(validator=_rate)
    concurrency: int = attrs.field(
        default=DEFAULT_CHUNK_CONCURRENCY, validator=_positive("concurrency")
    )
    resend_unknown: bool = False

    def to_task(self) -> dict[str, Any]:
        """The options as task keyword arguments (JSON)."""
        return attrs.asdict(self)


@attrs.frozen(kw_only=True)
class Chunk:
    """Consecutive messages of a campaign, from position `offset`.

    Attributes:
        campaign: The campaign's name.
        offset: The campaign position of the first message.
        messages: The messages, as `send_many` takes them.
    """

    campaign: str
    offset: int
    messages: Sequence[OutgoingMessage]

    @property
    def stop(self) -> int:
        """The position after the last message."""
        return self.offset + len(self.messages)

    def to_task(self) -> list[Any]:
        """`[campaign, offset, rows]`: the task's positional arguments, as JSON."""
        rows = [
            [m.from_, m.to, m.body]
            if m.idempotency_key is None
            else [m.from_, m.to, m.body, m.idempotency_key]
            for m in self.messages
        ]
        return [self.campaign, self.offset, rows]

    @classmethod
    def from_task(cls, campaign: object, offset: object, rows: object) -> Chunk:
        """The chunk a task was given (`to_task`'s output, through JSON).

        Raises:
            ConfigurationError: The arguments are not a chunk's: a task enqueued by
                something else under our task's name.
        """
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or offset < 0
            or not isinstance(rows, list)
            or not all(isinstance(row, list) and len(row) in (3, 4) for row in rows)
        ):
            raise ConfigurationError(
                "a campaign chunk task takes (campaign, offset >= 0, rows of "
                "[from, to, body] or [from, to, body, idempotency_key])",
                field="chunk",
            )
        messages = [OutgoingMessage.coerce(tuple(row)) for row in rows]
        return cls(campaign=check_campaign(campaign), offset=offset, messages=messages)


def chunks_of(
    campaign: str, messages: Iterable[MessageLike], chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[Chunk]:
    """The chunks of `messages`, read lazily, `chunk_size` messages each (the last fewer)."""
    _positive("chunk_size")(None, None, chunk_size)
    source = iter(messages)
    offset = 0
    while batch := list(itertools.islice(source, chunk_size)):
        chunk = Chunk(
            campaign=campaign, offset=offset, messages=[OutgoingMessage.coerce(m) for m in batch]
        )
        yield chunk
        offset = chunk.stop


def fingerprint(messages: Iterable[OutgoingMessage]) -> str:
    """`sha256:<hex>` of the messages' content, in order: the same input, the same print."""
    digest = hashlib.sha256()
    for message in messages:
        for field in (message.from_, message.to, message.body, message.idempotency_key or ""):
            encoded = field.encode("utf-8", "surrogatepass")
            digest.update(len(encoded).to_bytes(4, "big"))
            digest.update(encoded)
    return f"sha256:{digest.hexdigest()}"
