"""`parse_inbound`: check and decode one delivery, from raw bytes and headers. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from .._errors import InvalidPayloadError, UntrustedHostError
from .._models import InboundMessage
from .._wire.answers import load_json
from .._wire.inbound import WEBHOOK_HOST, structure_inbound
from ._body import DEFAULT_MAX_WEBHOOK_BYTES, BodyFormat, body_format, body_text, shown
from ._secret import Secrets, empty_secret, secret_refused

__all__ = ["DEFAULT_MAX_WEBHOOK_BYTES", "DEFAULT_SECRET_PARAM", "parse_inbound"]

#: The query parameter that carries the shared secret, when not a path segment.
DEFAULT_SECRET_PARAM: Final = "secret"  # noqa: S105 - a parameter name


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
    `http_status` is the answer to give). The URL and the headers are checked first,
    so that a delivery that fails them is refused before its body is looked at:

    1. when `secret` is set, `url` carries it as a path segment or as the query
       parameter `secret_param`, compared in constant time (`InvalidSecretError`, 403);
    2. the `Host` header (or the first host of `X-Forwarded-Host`, behind proxies) is
       one of `expected_host`, by default the service's `api.voipnumber.net`; `None`
       turns this check off (`UntrustedHostError`, 403);
    3. the content type is `application/json`, its `charset` (UTF-8 by default) one
       Python decodes text with, and the `Content-Encoding`, if any, gzip or deflate
       (`UnsupportedContentTypeError`, 415);
    4. the body is at most `max_bytes`, as sent and once inflated
       (`PayloadTooLargeError`, 413);
    5. the body is intact compressed data (when compressed), text in its charset, and
       a JSON object with every documented field, of its documented type
       (`InvalidPayloadError`, 400).

    The `Host` check is the one the service suggests, and any client can fake that
    header: it stops mistakes, not attackers. The secret in the URL is the check to
    rely on; keep the URL out of logs. Neither the secret nor the URL is kept in the
    locals of a frame an error passes through, for error trackers that record them.

    Args:
        body: The request's raw body, as sent (compressed, if it was).
        headers: The request's headers.
        url: The URL the delivery was posted to (a full URL, or its path and query):
            needed when `secret` is set.
        secret: The shared secret the webhook URL must carry; or several, any of
            which is accepted, to rotate it without refusing deliveries (see
            "Rotating the secret" in the docs).
        secret_param: The query parameter that may carry it.
        expected_host: The `Host` values accepted; `None` to skip the check.
        max_bytes: The largest body accepted, as sent and once inflated.

    Returns:
        The message, with unknown fields in `extra` and an unknown `type` kept.

    Raises:
        WebhookError: One of the checks failed; see above for which class means what.
        TypeError: `secret` is set without `url`.
        ValueError: `secret` is empty, or holds an empty one.
    """
    refusal = None if secret is None else _secret_refusal(url, secret, secret_param)
    # The URL carries the secret: both leave this frame's locals before anything is
    # raised, since error trackers record the locals of every frame on a traceback.
    del url, secret
    if refusal is not None:
        raise refusal
    declared = check_headers(
        headers, None if expected_host is None else allowed_hosts(expected_host)
    )
    return parse_body(body, declared, max_bytes)


def _secret_refusal(
    url: str | None, secret: str | Sequence[str], secret_param: str
) -> Exception | None:
    """Why `url` fails the secret check, as the error to raise; None if it passes.

    Returned, never raised, so that no frame holding the secret is on its traceback.
    """
    if url is None:
        return TypeError("parse_inbound(secret=...) needs url=, the URL the delivery came to")
    secrets = Secrets.of(secret)
    if secrets is None:
        return empty_secret()
    return None if secrets.carried_by_url(url, secret_param) else secret_refused(secret_param)


def allowed_hosts(expected: str | Iterable[str]) -> frozenset[str]:
    """`expected_host` as the set of lower-cased names `check_headers` takes.

    Raises:
        ValueError: No host at all: every delivery would be refused.
    """
    hosts = frozenset((expected,) if isinstance(expected, str) else expected)
    if not hosts:
        raise ValueError(
            "expected_host names no host, so every delivery would be refused: pass the "
            "Host values accepted, or None to skip the check"
        )
    return frozenset(host.lower() for host in hosts)


def check_headers(headers: Mapping[str, str], allowed: frozenset[str] | None) -> BodyFormat:
    """`parse_inbound`'s checks of the headers: the host, the content type and coding.

    `create_app` calls it directly, before it reads the body; `allowed` is
    `allowed_hosts(expected_host)`, or None to skip the host check.

    Returns:
        The charset and content coding the headers declare, for `parse_body`.
    """
    lowered = _lowered(headers)
    if allowed is not None:
        _check_host(lowered.get("host", ""), lowered.get("x-forwarded-host", ""), allowed)
    return body_format(lowered.get("content-type"), lowered.get("content-encoding"))


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers by lower-cased name, from a dict or a multidict (aiohttp's).

    A repeated header's last value wins, except X-Forwarded-Host's, whose first names
    the first hop; repeated Content-Encoding lines are the one list they stand for
    (RFC 9110 5.3).
    """
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        earlier = lowered.get(key)
        if earlier is None:
            lowered[key] = value
        elif key == "content-encoding":
            lowered[key] = f"{earlier}, {value}"
        elif key != "x-forwarded-host":
            lowered[key] = value
    return lowered


def parse_body(body: bytes, declared: BodyFormat, max_bytes: int) -> InboundMessage:
    """`parse_inbound` after its header checks: the size, the coding, the charset, the JSON."""
    text = body_text(body, declared, max_bytes)
    try:
        payload = load_json(text)
    except ValueError as error:
        raise InvalidPayloadError(f"the delivery is not JSON: {error}") from None
    return structure_inbound(payload)


def _check_host(host: str, forwarded: str, allowed: frozenset[str]) -> None:
    if forwarded:
        # Each proxy appends the host it was asked for: the first is the client's.
        host = forwarded.split(",", maxsplit=1)[0].strip() or host
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.lower() not in allowed:
        raise UntrustedHostError(
            f"the delivery's Host is {shown(host)}, not {sorted(allowed)[0]!r} as the service "
            "sends (pass expected_host= to change, or None to skip this check)"
        )
