"""What the service answers, and what each answer means: a `SentMessage` or a typed error.

The decoder is driven by the error code first, then the HTTP status (the tables are in
`codes`), and never raises anything but a `VoipNumberError`, however broken or hostile
the answer. The sandbox writes its answers with the encoders at the bottom.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final

import cattrs

from .._errors import (
    APIError,
    OutcomeUnknownError,
    UnexpectedResponseError,
    VoipNumberError,
)
from .._models import SentMessage
from .._transport import TransportResponse
from .codes import ERROR_CLASSES, ERROR_HINTS, STATUS_CLASSES, STATUS_HINTS
from .convert import converter

#: The header that names an answer for the service's support (**assumed**).
HEADER_REQUEST_ID: Final = "X-Request-Id"
#: The header of a 429 or 503 that says how long to wait (**assumed**, as HTTP has it).
HEADER_RETRY_AFTER: Final = "Retry-After"

_EXCERPT_CHARS: Final = 200
_decode_json = json.JSONDecoder().decode


#: An HTTP answer as the transport read it.
Answer = TransportResponse


def load_json(text: str | bytes) -> Any:
    """The JSON value of `text`; `ValueError` (never anything else) if it holds none.

    Nesting deeper than the interpreter's recursion limit (`[[[[...`, a few dozen KiB
    from a hostile peer) is refused as the ValueError it is, not a RecursionError.
    """
    try:
        # UTF-8, as JSON between systems must be: a third cheaper than `json.loads` on
        # bytes, which first sniffs the encoding.
        return _decode_json(text) if isinstance(text, str) else _decode_json(text.decode())
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None
    except ValueError:
        if isinstance(text, str):
            raise
    try:
        return json.loads(text)  # a byte order mark, or UTF-16/32: json.loads knows them
    except RecursionError:
        raise ValueError("JSON nested too deeply to decode") from None


def _json_or_none(body: bytes) -> Any:
    """The JSON value of `body`, or None if it holds none."""
    try:
        return load_json(body)
    except ValueError:
        return None


def decode_send_answer(answer: Answer) -> SentMessage:
    """Return the message an answer reports as sent, or raise the error it reports.

    Raises only `VoipNumberError`s: whatever a broken or hostile answer makes the
    decoder raise becomes an `UnexpectedResponseError`.
    """
    status = answer.status
    failure: VoipNumberError
    try:
        payload = _json_or_none(answer.body)
        result = _unwrap_ok(payload)
        if 200 <= status < 300 and result is not None:
            return converter.structure(result, SentMessage)
        failure = error_from_answer(answer, payload)
    except Exception as error:  # an answer, however broken, must never crash the caller
        read_as_success = 200 <= status < 300
        failure = UnexpectedResponseError(
            (
                "the service reported success but the message in its answer could not be "
                f"read ({_describe(error)}); it was probably sent, do not send it again "
                "without its idempotency key"
            )
            if read_as_success
            else f"the service's answer (HTTP {status}) could not be read ({_describe(error)})",
            excerpt=_excerpt(answer.body),
            http_status=status,
            request_id=_header_text(answer.headers, HEADER_REQUEST_ID),
            may_have_been_sent=may_have_processed(status),
        )
    raise failure


def _header_text(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if isinstance(value, str) else None


def _unwrap_ok(payload: Any) -> dict[str, Any] | None:
    """The innermost `result` of one or more `{"status": "OK", "result": ...}` envelopes."""
    depth = 0
    while (
        isinstance(payload, dict)
        and payload.get("status") == "OK"
        and isinstance(payload.get("result"), dict)
    ):
        payload, depth = payload["result"], depth + 1
    if depth and isinstance(payload, dict) and "id" in payload:
        return payload
    return None


def _find_error(payload: Any) -> tuple[str | None, str | None, bool]:
    """`(code, description, said_error)` from the nested, flat or doubly nested forms."""
    while isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            return _as_text(error.get("code")), _as_text(error.get("description")), True
        if "code" in payload:
            return _as_text(payload.get("code")), _as_text(payload.get("description")), True
        if payload.get("status") == "ERROR":
            return None, _as_text(payload.get("description")), True
        payload = payload.get("result")
    return None, None, False


def _as_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def error_from_answer(answer: Answer, payload: Any) -> VoipNumberError:
    """The error an answer that is not a success stands for: by code, then by HTTP status."""
    code, description, said_error = _find_error(payload)
    status = answer.status
    request_id = answer.headers.get(HEADER_REQUEST_ID)
    retry_after = parse_retry_after(answer.headers.get(HEADER_RETRY_AFTER))

    cls: type[VoipNumberError] | None = ERROR_CLASSES.get(code) if code else None
    if cls is None:
        cls = STATUS_CLASSES.get(status)
    if cls is None and status >= 500:
        cls = OutcomeUnknownError
    if cls is None and said_error:
        cls = APIError
    if cls is None:
        shape = "not JSON" if payload is None else "JSON of no known shape"
        return UnexpectedResponseError(
            f"unexpected answer from the service (HTTP {status}, {shape}): "
            f"{_excerpt(answer.body)!r}",
            excerpt=_excerpt(answer.body),
            http_status=status,
            request_id=request_id,
            may_have_been_sent=may_have_processed(status),
        )

    summary = f"{code}: {description}" if code and description else (code or description)
    if summary is None:
        summary = f"HTTP {status}" + ("" if payload is not None else f": {_excerpt(answer.body)!r}")
    else:
        summary += f" (HTTP {status})"
    hint = ERROR_HINTS.get(code or "") or STATUS_HINTS.get(cls)
    message = summary + (f"; {hint}" if hint else "")
    fields: dict[str, Any] = {
        "http_status": status,
        "code": code,
        "description": description,
        "request_id": request_id,
    }
    if issubclass(cls, APIError):
        fields["retry_after"] = retry_after
    return cls(message, **fields)


def may_have_processed(status: int) -> bool:
    """Whether an answer of HTTP `status` whose body cannot be read may mean a sent message.

    A 4xx is a refusal; a 2xx (or 3xx) may have been a success; a 5xx may have come after
    the message was processed (502/503, which say it was not, are told apart by status
    before any body is read).
    """
    return not 400 <= status < 500


def answer_too_large(status: int, headers: Mapping[str, str], limit: int) -> VoipNumberError:
    """The error for an answer whose body is over `limit` bytes (it is not read further)."""
    return UnexpectedResponseError(
        f"the service's answer (HTTP {status}) is larger than {limit:,} bytes, far beyond "
        "any answer of the contract, and was not read"
        + ("; the message may have been sent" if may_have_processed(status) else ""),
        http_status=status,
        request_id=headers.get(HEADER_REQUEST_ID),
        may_have_been_sent=may_have_processed(status),
    )


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (seconds or an HTTP date), else `None`."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        try:
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (OverflowError, OSError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _excerpt(body: bytes) -> str:
    return body[: _EXCERPT_CHARS * 4].decode("utf-8", "replace")[:_EXCERPT_CHARS]


def _describe(error: BaseException) -> str:
    if isinstance(error, cattrs.BaseValidationError):
        text = "; ".join(str(leaf) for leaf in error.exceptions) or str(error)
    else:
        text = str(error) or type(error).__name__
    return text[:_EXCERPT_CHARS]


# --- The sandbox's side: the same answers, written ----------------------------------------


def encode_send_success(message: SentMessage, *, nested: bool = False) -> bytes:
    """A success answer for `message`, in the single or the doubly nested envelope."""
    result: dict[str, Any] = {"status": "OK", "result": converter.unstructure(message)}
    if nested:
        result = {"status": "OK", "result": result}
    return json.dumps(result).encode()


def encode_error(code: str, description: str) -> bytes:
    """An error answer in the (assumed) nested error form."""
    return json.dumps(
        {"status": "ERROR", "error": {"code": code, "description": description}}
    ).encode()
