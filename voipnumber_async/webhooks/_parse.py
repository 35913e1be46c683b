"""`parse_inbound`: check and decode one delivery, from raw bytes and headers. No I/O."""

from __future__ import annotations

import codecs
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy

from .._errors import (
    InvalidPayloadError,
    InvalidSecretError,
    PayloadTooLargeError,
    UnsupportedContentTypeError,
    UntrustedHostError,
)
from .._models import InboundMessage
from .._wire import JSON_CONTENT_TYPE, WEBHOOK_HOST, structure_inbound

__all__ = ["DEFAULT_MAX_WEBHOOK_BYTES", "DEFAULT_SECRET_PARAM", "parse_inbound"]

#: The largest delivery accepted: a documented one is about 250 bytes.
DEFAULT_MAX_WEBHOOK_BYTES: Final = 64 * 1024
#: The query parameter that carries the shared secret, when not a path segment.
DEFAULT_SECRET_PARAM: Final = "secret"  # noqa: S105 - a parameter name

#: Content types (lower-cased) that mean JSON in UTF-8 with nothing else to parse.
_PLAIN_JSON_CONTENT_TYPES: Final = frozenset(
    (JSON_CONTENT_TYPE, f"{JSON_CONTENT_TYPE}; charset=utf-8", f"{JSON_CONTENT_TYPE};charset=utf-8")
)


def parse_inbound(
    body: bytes,
    headers: Mapping[str, str],
    *,
    url: str | None = None,
    secret: str | Sequence[str] | None = None,
    secret_param: str = DEFAULT_SECRET_PARAM,
    expected_host: str | Iterable[str] | None = WEBHOOK_HOST,
    max_bytes: int = DEFAULT_MAX_WEBHOOK_BYTES,
) -> InboundMessage:
    """Check one webhook delivery and return the message it carries.

    Works with any framework: pass the raw body (not a parsed dict, so that what is
    checked is what was sent) and the request's headers (any mapping; names in any
    case).

    ```py
    message = parse_inbound(request.get_data(), request.headers,
                            url=request.full_path, secret=WEBHOOK_SECRET)   # Flask
    ```

    The checks, in order, each with its own error (all `WebhookError`s, whose
    `http_status` is the answer to give):

    1. the body is at most `max_bytes` (`PayloadTooLargeError`, 413);
    2. when `secret` is set, `url` carries it as a path segment or as the query
       parameter `secret_param`, compared in constant time (`InvalidSecretError`, 403);
    3. the `Host` header (or `X-Forwarded-Host`, behind a proxy) is one of
       `expected_host`, by default the service's `api.voipnumber.net`; `None` turns
       this check off (`UntrustedHostError`, 403);
    4. the content type is `application/json`, a `charset` allowed
       (`UnsupportedContentTypeError`, 415);
    5. the body is a JSON object with every documented field, of its documented type
       (`InvalidPayloadError`, 400).

    The `Host` check is the one the service suggests, and any client can fake that
    header: it stops mistakes, not attackers. The secret in the URL is the check to
    rely on; keep the URL out of logs.

    Args:
        body: The request's raw body.
        headers: The request's headers.
        url: The URL the delivery was posted to (a full URL, or its path and query):
            needed when `secret` is set.
        secret: The shared secret the webhook URL must carry; or several, any of
            which is accepted, to rotate it without refusing deliveries (see
            "Rotating the secret" in the docs).
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted.

    Returns:
        The message, with unknown fields in `extra` and an unknown `type` kept.

    Raises:
        WebhookError: One of the checks failed; see above for which class means what.
    """
    check_size(body, max_bytes)
    if secret is not None:
        check_secret(url, secret, secret_param)
    return parse_delivery(
        body, headers, None if expected_host is None else allowed_hosts(expected_host)
    )


def allowed_hosts(expected: str | Iterable[str]) -> frozenset[str]:
    """`expected_host` as the set of lower-cased names `parse_delivery` takes."""
    if isinstance(expected, str):
        return frozenset((expected.lower(),))
    return frozenset(host.lower() for host in expected)


def check_size(body: bytes, max_bytes: int) -> None:
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"the delivery is {len(body)} bytes, over the limit of {max_bytes}"
        )


def parse_delivery(
    body: bytes, headers: Mapping[str, str], allowed: frozenset[str] | None
) -> InboundMessage:
    """`parse_inbound` after its size and secret checks: the host, the content type, the JSON.

    `create_app` calls it directly, having checked the secret without parsing a URL;
    `allowed` is `allowed_hosts(expected_host)`, or None to skip the host check.
    """
    if isinstance(headers, (CIMultiDictProxy, CIMultiDict)):
        # Case-insensitive already (aiohttp's `request.headers`): look the names up. A
        # repeated header's last value wins, as it does in the lower-cased dict below.
        content_type = _last(headers.getall(hdrs.CONTENT_TYPE, None))
        if allowed is not None:
            _check_host(
                _last(headers.getall(hdrs.HOST, None)) or "",
                _last(headers.getall(hdrs.X_FORWARDED_HOST, None)) or "",
                allowed,
            )
    else:
        lowered = {name.lower(): value for name, value in headers.items()}
        content_type = lowered.get("content-type")
        if allowed is not None:
            _check_host(lowered.get("host", ""), lowered.get("x-forwarded-host", ""), allowed)
    text = _decode(body, content_type)
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise InvalidPayloadError(f"the delivery is not JSON: {error}") from None
    return structure_inbound(payload)


def _last(values: list[str] | None) -> str | None:
    return values[-1] if values else None


def secrets_of(secret: str | Sequence[str]) -> tuple[bytes, ...]:
    """The secret, or each of several, as the bytes `carries_secret` compares.

    Raises:
        ValueError: No secret, or an empty one: it would accept every delivery.
    """
    secrets = (secret,) if isinstance(secret, str) else tuple(secret)
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError(
            "an empty secret would accept every delivery: pass a non-empty string (or "
            "several), or secret=None to skip the check"
        )
    return tuple(s.encode() for s in secrets)


def check_secret(url: str | None, secret: str | Sequence[str], secret_param: str) -> None:
    if url is None:
        raise TypeError("parse_inbound(secret=...) needs url=, the URL the delivery came to")
    expected = secrets_of(secret)
    parts = urlsplit(url)
    candidates = [segment for segment in parts.path.split("/") if segment]
    candidates += [value for name, value in parse_qsl(parts.query) if name == secret_param]
    if not carries_secret(candidates, expected):
        raise secret_refused(secret_param)


def carries_secret(candidates: Iterable[str], expected: tuple[bytes, ...]) -> bool:
    """Whether one of `candidates` (from the delivery's URL) is one of the secrets."""
    # Every candidate is compared with every secret, so the time taken says nothing of
    # where a match is, nor of which secret matched.
    matched = False
    for candidate in candidates:
        given = candidate.encode()
        for secret in expected:
            matched |= hmac.compare_digest(given, secret)
    return matched


def secret_refused(secret_param: str) -> InvalidSecretError:
    """The error for a delivery whose URL does not carry the secret."""
    return InvalidSecretError(
        "the webhook URL does not carry the shared secret "
        f"(as a path segment or as ?{secret_param}=)"
    )


def _check_host(host: str, forwarded: str, allowed: frozenset[str]) -> None:
    if forwarded:
        host = forwarded.split(",", maxsplit=1)[0].strip() or host
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() not in allowed:
        raise UntrustedHostError(
            f"the delivery's Host is {host!r}, not {sorted(allowed)[0]!r} as the service "
            "sends (pass expected_host= to change, or None to skip this check)"
        )


def _decode(body: bytes, content_type: str | None) -> str:
    # The service's own content type (and the common spellings of it with UTF-8) decode
    # as UTF-8 without parsing; anything else goes the long way, to the same result.
    if content_type is not None and content_type.lower() in _PLAIN_JSON_CONTENT_TYPES:
        charset = "utf-8"
    else:
        charset = _charset(content_type)
    try:
        return body.decode(charset)
    except UnicodeDecodeError as error:
        raise InvalidPayloadError(f"the delivery is not valid {charset}: {error}") from None


def _charset(content_type: str | None) -> str:
    """The charset a JSON content type declares (UTF-8 by default), checked."""
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != JSON_CONTENT_TYPE:
        raise UnsupportedContentTypeError(
            f"the delivery's content type is {content_type!r}, not {JSON_CONTENT_TYPE!r}"
        )
    charset = "utf-8"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    try:
        codecs.lookup(charset)
    except LookupError:
        raise UnsupportedContentTypeError(
            f"the delivery's charset {charset!r} is not one Python knows"
        ) from None
    return charset
