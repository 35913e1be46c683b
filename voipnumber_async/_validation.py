"""Checks run on a request before anything is sent. Pure functions, no I/O."""

from __future__ import annotations

import re

from ._errors import InvalidRequestError

# E.164: a "+", a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
# An Idempotency-Key travels in a header: visible ASCII only, and a sane length.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def check_number(field: str, value: object) -> str:
    """Return `value` if it is an E.164 number, else raise `InvalidRequestError` naming `field`."""
    if not isinstance(value, str):
        raise InvalidRequestError(
            f"{field} must be a str holding an E.164 number such as '+447483866525', "
            f"got {type(value).__name__}",
            field=field,
        )
    if E164.fullmatch(value) is None:
        raise InvalidRequestError(
            f"{field} must be an E.164 number: '+', the country code, then the number, "
            f"digits only, 8 to 16 characters in all (such as '+447483866525'); got {value!r}",
            field=field,
        )
    return value


def check_body(value: object) -> str:
    """Return `value` if it is a str with some text, else raise `InvalidRequestError`.

    A body of only whitespace is refused like an empty one: it would reach the phone as
    a blank message, which is never what the sender meant.
    """
    if not isinstance(value, str):
        raise InvalidRequestError(f"body must be a str, got {type(value).__name__}", field="body")
    if not value.strip():
        raise InvalidRequestError(
            "body must not be empty or only whitespace: a message needs some text",
            field="body",
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone surrogate (half of an emoji, say, from text cut or decoded badly): no
        # UTF-8 can carry it, so no request can.
        raise InvalidRequestError(
            f"body holds {value[error.start : error.end]!r} at character {error.start}, half "
            "of a character (a lone surrogate) that no message can carry: fix how the text "
            "was cut or decoded",
            field="body",
        ) from None
    return value


def check_idempotency_key(value: object) -> str:
    """Return a caller's idempotency key if it can travel in a header, else raise."""
    if not isinstance(value, str) or _IDEMPOTENCY_KEY.fullmatch(value) is None:
        raise InvalidRequestError(
            "idempotency_key must be 1 to 255 visible ASCII characters with no spaces "
            f"(a UUID is ideal), got {value!r}",
            field="idempotency_key",
        )
    return value
