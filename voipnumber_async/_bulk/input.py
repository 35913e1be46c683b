"""The input stage: messages read lazily from a plain or async iterable, each made a `Job`.

A job is one message taken from the input: its index, the message coerced, and its
request body, or the validation error that means it is never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Final

from .._errors import InvalidRequestError
from .._validation import check_body, check_idempotency_key, check_number
from .._wire.requests import encode_send_request
from .messages import MessageLike, OutgoingMessage

__all__ = ["END", "Input", "Job"]


class Job:
    """One message taken from the input, and the key it is sent with once one is chosen."""

    __slots__ = ("error", "index", "key", "message", "payload")

    def __init__(self, index: int, value: MessageLike) -> None:
        self.index = index
        self.message = message = OutgoingMessage.coerce(value)
        self.key: str | None = None
        #: The request's JSON body; empty if the message is invalid (`error` says why).
        self.payload = b""
        self.error: InvalidRequestError | None = None
        try:
            self.payload = _payload(message)
        except InvalidRequestError as error:
            self.error = error


class _End:
    """The end of the input (and, in the workers' queue, of the jobs)."""


END: Final = _End()


class Input:
    """The messages of a run, read one at a time and counted: `await next_job()`.

    Reading a plain iterable costs no task switch; an async one is awaited.
    """

    def __init__(self, messages: Iterable[MessageLike] | AsyncIterable[MessageLike]) -> None:
        self._messages = messages
        self._sync: Iterator[MessageLike] | None = None
        self._async: AsyncIterator[MessageLike] | None = None
        #: Messages taken so far: the next one's index.
        self.taken = 0

    def open(self) -> None:
        """Start iterating (what raises if the input cannot be iterated)."""
        if isinstance(self._messages, AsyncIterable):
            self._async = aiter(self._messages)
        else:
            self._sync = iter(self._messages)

    async def next_job(self) -> Job | _End:
        """The next message as a job, or `END`.

        Raises:
            InvalidRequestError: The value read is not a message at all.
        """
        if self._sync is not None:
            value = next(self._sync, END)
        else:
            assert self._async is not None
            value = await anext(self._async, END)
        if isinstance(value, _End):
            return END
        job = Job(self.taken, value)
        self.taken += 1
        return job


def _payload(message: OutgoingMessage) -> bytes:
    from_ = check_number("from_", message.from_)
    to = check_number("to", message.to)
    body = check_body(message.body)
    if message.idempotency_key is not None:
        check_idempotency_key(message.idempotency_key)
    return encode_send_request(from_, to, body)
