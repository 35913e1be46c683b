"""A delivery's body: how big it may be, and how its bytes become text.

The rules for the size cap, the `Content-Encoding` (inflated under the same cap) and
the `charset`, in one place for `parse_inbound` and `create_app` alike: both read the
raw bytes as sent (`create_app` turns aiohttp's own inflating off) and hand them here.
"""

from __future__ import annotations

import codecs
import zlib
from typing import Final, NamedTuple

from .._errors import InvalidPayloadError, PayloadTooLargeError, UnsupportedContentTypeError
from .._wire.requests import JSON_CONTENT_TYPE

__all__ = [
    "DEFAULT_MAX_WEBHOOK_BYTES",
    "BodyFormat",
    "body_format",
    "body_text",
    "check_size",
    "shown",
]

#: The largest delivery accepted, as sent and once inflated: a documented one is about
#: 250 bytes.
DEFAULT_MAX_WEBHOOK_BYTES: Final = 64 * 1024


class BodyFormat(NamedTuple):
    """What a delivery's headers say of its body."""

    #: The codec that decodes it (a Python codec name, lower-cased).
    charset: str
    #: The content coding to undo (`"gzip"` or `"deflate"`), None when sent as is.
    coding: str | None


#: The service's own content type (and the common spellings of it with UTF-8, lower-cased):
#: JSON in UTF-8, with nothing else to parse.
_PLAIN_JSON_CONTENT_TYPES: Final = frozenset(
    (JSON_CONTENT_TYPE, f"{JSON_CONTENT_TYPE}; charset=utf-8", f"{JSON_CONTENT_TYPE};charset=utf-8")
)
_PLAIN: Final = BodyFormat("utf-8", None)

#: The content codings inflated (RFC 9110 section 8.4.1; `x-gzip` is gzip's old name),
#: with the zlib window that reads each.
_INFLATED_CODINGS: Final = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
_IDENTITY: Final = "identity"

#: Text codecs of Python's own that no HTTP peer means by a charset: `undefined` refuses
#: every byte, the escape codecs read Python source escapes, `idna`/`punycode` host names.
_NOT_CHARSETS: Final = frozenset(
    ("undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode")
)


def shown(value: str) -> str:
    """`value` quoted for an error message, cut short: a header may be kilobytes long."""
    return repr(value) if len(value) <= 64 else f"{value[:64]!r}..."


def check_size(size: int, max_bytes: int) -> None:
    """Refuse a body of `size` bytes as sent, if over `max_bytes` (`PayloadTooLargeError`)."""
    if size > max_bytes:
        raise PayloadTooLargeError(f"the delivery is {size} bytes, over the limit of {max_bytes}")


def body_format(content_type: str | None, content_encoding: str | None) -> BodyFormat:
    """The charset and the content coding a delivery's headers declare, checked.

    Raises:
        UnsupportedContentTypeError: The content type is not JSON, its charset is not
            one Python decodes text with, or the content coding is neither gzip nor
            deflate (415, as RFC 9110 says for a content coding not supported).
    """
    if (
        content_encoding is None
        and content_type is not None
        and content_type.lower() in _PLAIN_JSON_CONTENT_TYPES
    ):
        return _PLAIN
    return BodyFormat(_charset(content_type), _coding(content_encoding))


def body_text(body: bytes, declared: BodyFormat, max_bytes: int) -> str:
    """The text of `body`: its size checked, inflated under the cap, decoded.

    Raises:
        PayloadTooLargeError: Over `max_bytes` as sent or once inflated (413).
        InvalidPayloadError: Corrupt or truncated compressed data, or bytes that are
            not in the declared charset (400).
    """
    check_size(len(body), max_bytes)
    if declared.coding is not None:
        body = _inflate(body, declared.coding, max_bytes)
    try:
        return body.decode(declared.charset)
    except UnicodeError as error:  # UnicodeDecodeError, or a codec's own complaint
        raise InvalidPayloadError(
            f"the delivery is not valid {declared.charset}: {error}"
        ) from None


def _charset(content_type: str | None) -> str:
    """The charset a JSON content type declares (UTF-8 by default), checked."""
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != JSON_CONTENT_TYPE:
        raise UnsupportedContentTypeError(
            f"the delivery's content type is {shown(content_type or '')}, not {JSON_CONTENT_TYPE!r}"
        )
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    try:
        codec = codecs.lookup(charset)
    except (LookupError, ValueError):  # ValueError: a NUL, or a lone surrogate, in the name
        raise UnsupportedContentTypeError(
            f"the delivery's charset {shown(charset)} is not one Python knows (send utf-8)"
        ) from None
    # `_is_text_encoding` is what `bytes.decode` itself checks: rot13, base64, zlib...
    # are codecs, but of bytes to bytes, not of bytes to text.
    if not codec._is_text_encoding or codec.name in _NOT_CHARSETS:
        raise UnsupportedContentTypeError(
            f"the delivery's charset {shown(charset)} is not a text encoding (send utf-8)"
        )
    return codec.name


def _coding(content_encoding: str | None) -> str | None:
    """The one content coding `content_encoding` names (None: identity), checked."""
    if content_encoding is None:
        return None
    codings = [
        coding
        for part in content_encoding.split(",")
        if (coding := part.strip().lower()) and coding != _IDENTITY
    ]
    if not codings:
        return None
    if len(codings) > 1:
        raise UnsupportedContentTypeError(
            f"the delivery's Content-Encoding is {shown(content_encoding)}: compressed more "
            "than once (send it with one of gzip or deflate, or uncompressed)"
        )
    if codings[0] not in _INFLATED_CODINGS:
        raise UnsupportedContentTypeError(
            f"the delivery's Content-Encoding is {shown(content_encoding)}: not gzip or "
            "deflate, the codings inflated (or send it uncompressed)"
        )
    return codings[0]


def _inflate(body: bytes, coding: str, max_bytes: int) -> bytes:
    """`body` inflated, refused as soon as it is over `max_bytes` (a small bomb is a big body)."""
    wbits = _INFLATED_CODINGS[coding]
    if coding == "deflate" and body and body[0] & 0x0F != 8:
        # Raw deflate, without the zlib header RFC 9110 asks for: senders do that, and
        # aiohttp's own inflating took it, so it is taken too.
        wbits = -zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        # One byte over the cap is enough to know it is over, however far it would go.
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise InvalidPayloadError(f"the delivery's {coding} data is corrupt: {error}") from None
    if len(inflated) > max_bytes:
        raise PayloadTooLargeError(f"the delivery inflates to over the limit of {max_bytes} bytes")
    if not inflater.eof:
        raise InvalidPayloadError(f"the delivery's {coding} data is cut short")
    if inflater.unused_data:
        raise InvalidPayloadError(f"the delivery has other data after its {coding} data")
    return inflated
