"""The wire contract: the only module that knows routes, headers and JSON shapes.

The service documents its JSON bodies and error codes but not its HTTP details. What
this module assumes is marked **assumed** (see the project's wire contract), so that
correcting one is a change here and nowhere else: the sandbox server imports these
same names to implement the contract it is tested against.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from ._errors import (
    APIError,
    AuthenticationError,
    InvalidPayloadError,
    MessageInvalidError,
    NumberNotFoundError,
    NumberOwnershipError,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
    UnexpectedResponseError,
    VoipNumberError,
)
from ._models import InboundMessage, SentMessage
from ._transport import TransportResponse
from ._version import __version__

# --- The request (assumed) -------------------------------------------------------------

SEND_SMS_PATH: Final = "/v1/sms/send"
HEADER_ACCOUNT_ID: Final = "X-Account-Id"
HEADER_AUTHORIZATION: Final = "Authorization"
HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"
HEADER_REQUEST_ID: Final = "X-Request-Id"
HEADER_RETRY_AFTER: Final = "Retry-After"
USER_AGENT: Final = f"voipnumber-python/{__version__}"
JSON_CONTENT_TYPE: Final = "application/json"


def base_headers(account_id: str, api_token: str) -> dict[str, str]:
    """The headers every request carries; the caller adds the idempotency key."""
    return {
        "Content-Type": JSON_CONTENT_TYPE,
        "Accept": JSON_CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        HEADER_ACCOUNT_ID: account_id,
        HEADER_AUTHORIZATION: f"Bearer {api_token}",
    }


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or `None` when absent."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class _RandomBytes(threading.local):
    """`os.urandom` read ahead, per thread: one system call per 256 keys, not one per key.

    On a busy event loop the call per key cost more than the rest of a send's own work
    together. Per thread, so no two threads ever take the same bytes; dropped in a
    forked child, so a child never repeats its parent's.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.offset = 0

    def take(self, count: int) -> bytes:
        offset = self.offset
        if offset + count > len(self.buffer):
            self.buffer, offset = os.urandom(_RANDOM_READ_AHEAD), 0
        self.offset = offset + count
        return self.buffer[offset : offset + count]

    def forget(self) -> None:
        """Drop the bytes read ahead (this thread's: after a fork, the only one left)."""
        self.buffer, self.offset = b"", 0


_RANDOM_READ_AHEAD: Final = 4096
_random_bytes = _RandomBytes()
if hasattr(os, "register_at_fork"):  # not on Windows, where there is no fork
    os.register_at_fork(after_in_child=_random_bytes.forget)


def new_idempotency_key() -> str:
    """A fresh key for one message: a random (version 4) UUID, as the contract suggests.

    The same 122 random bits from the OS as `uuid.uuid4()`, read ahead in blocks and
    formatted directly: a fraction of its cost, which shows at thousands of messages a
    second.
    """
    raw = bytearray(_random_bytes.take(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_ = raw.hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


# One encoder, built once: json.dumps with options builds a new one on every call.
_encode_json = json.JSONEncoder(ensure_ascii=False).encode
_decode_json = json.JSONDecoder().decode


def encode_send_request(from_: str, to: str, body: str) -> bytes:
    """The JSON body of a send request."""
    return _encode_json({"from": from_, "to": to, "body": body}).encode()


# --- Dates ------------------------------------------------------------------------------

_MONTHS: Final = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_SERVICE_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip


# Messages sent in the same second share their `created` text, and datetimes are
# immutable: a burst of sends parses each second once.
@functools.lru_cache(maxsize=64)
def parse_service_datetime(value: str) -> datetime:
    """Parse the service's `20 May 2024 08:28:37` (UTC assumed) into an aware datetime.

    Months are accepted in full or abbreviated. Hand-written rather than `strptime`,
    which costs several times more and depends on the locale.
    """
    try:
        day, month, year, clock = value.split()
        hour, minute, second = clock.split(":")
        return datetime(
            int(year),
            _MONTHS[month.lower()],
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone.utc,
        )
    except (ValueError, KeyError, OverflowError):
        # OverflowError: a year of many digits (int() takes it; datetime() cannot).
        raise ValueError(
            f"expected a date such as '20 May 2024 08:28:37', got {value[:64]!r}"
        ) from None


# The journal of a bulk run writes the `created` of every message sent: the same few.
@functools.lru_cache(maxsize=64)
def format_service_datetime(value: datetime) -> str:
    """The service's date form of an aware datetime, in UTC."""
    utc = value.astimezone(timezone.utc)
    return f"{utc.day} {_SERVICE_MONTHS[utc.month - 1]} {utc.year} {utc:%H:%M:%S}"


# --- Models <-> JSON ----------------------------------------------------------------------


def make_converter() -> cattrs.Converter:
    """The converter between wire JSON and the SDK's models. Unknown fields go to `extra`."""
    converter = cattrs.Converter()
    converter.register_structure_hook(datetime, lambda value, _: _to_datetime(value))
    converter.register_unstructure_hook(datetime, format_service_datetime)

    known = frozenset(field.name for field in attrs.fields(SentMessage)) - {"extra"}
    structure_known = make_dict_structure_fn(SentMessage, converter)

    def structure_sent_message(data: Mapping[str, Any], _: type[SentMessage]) -> SentMessage:
        fast = sent_message_from_exact(data)
        if fast is not None:
            return fast
        split = {key: data[key] for key in known if key in data}
        split["extra"] = {key: value for key, value in data.items() if key not in known}
        return structure_known(split, SentMessage)

    def unstructure_sent_message(message: SentMessage) -> dict[str, Any]:
        # Every field but `created` is a str or an int: each unstructures as itself.
        return {
            **message.extra,
            "status": message.status,
            "body": message.body,
            "timestamp_s": message.timestamp_s,
            "created": format_service_datetime(message.created),
            "id": message.id,
        }

    converter.register_structure_hook(SentMessage, structure_sent_message)
    converter.register_unstructure_hook(SentMessage, unstructure_sent_message)
    converter.register_structure_hook(InboundMessage, lambda data, _: structure_inbound(data))
    converter.register_unstructure_hook(InboundMessage, unstructure_inbound)
    return converter


_SENT_FIELDS: Final = frozenset(("id", "status", "body", "timestamp_s", "created"))


def sent_message_from_exact(data: Mapping[str, Any]) -> SentMessage | None:
    """The `SentMessage` of `data` if each field has its exact type, else None.

    The answer to every send comes through here: built directly, it costs a fraction of
    cattrs' dispatch and generated function. Anything else goes through the converter,
    which coerces or says what is wrong with which field.
    """
    get = data.get
    id_, status, body, timestamp_s, created = (
        get("id"), get("status"), get("body"), get("timestamp_s"), get("created"),
    )  # fmt: skip
    if not (
        type(id_) is str
        and type(status) is str
        and type(body) is str
        and type(timestamp_s) is int
        and type(created) is str
    ):
        return None
    return SentMessage(
        id=id_,
        status=status,
        body=body,
        timestamp_s=timestamp_s,
        created=parse_service_datetime(created),
        extra={} if len(data) == 5 else {k: v for k, v in data.items() if k not in _SENT_FIELDS},
    )


def _to_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_service_datetime(value)
    raise TypeError(f"expected a date string, got {type(value).__name__}")


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


# --- Errors: code first, then HTTP status ---------------------------------------------

#: The documented codes with their documented descriptions.
ERROR_DESCRIPTIONS: Final[Mapping[str, str]] = {
    "USER_ACCOUNT_MISSING": "AccountId not set or empty",
    "API_TOKEN_MISSING": "API token not set or empty",
    "USER_NOT_FOUND": "User with this AccountId cannot be found",
    "API_TOKEN_INVALID": "API token doesn't match AccountId",
    "NUMBER_NOT_FOUND": "Number doesn't exist on VoIP Number",
    "NUMBER_OWNERSHIP": "Number doesn't belong to this account",
    "MESSAGE_INVALID": "Coding syntax error",
}

#: The class each documented code is raised as, whatever the HTTP status.
ERROR_CLASSES: Final[Mapping[str, type[APIError]]] = {
    "USER_ACCOUNT_MISSING": AuthenticationError,
    "API_TOKEN_MISSING": AuthenticationError,
    "USER_NOT_FOUND": AuthenticationError,
    "API_TOKEN_INVALID": AuthenticationError,
    "NUMBER_NOT_FOUND": NumberNotFoundError,
    "NUMBER_OWNERSHIP": NumberOwnershipError,
    "MESSAGE_INVALID": MessageInvalidError,
}

#: The HTTP status each documented code is answered with (**assumed**).
ERROR_HTTP_STATUS: Final[Mapping[str, int]] = {
    "USER_ACCOUNT_MISSING": 401,
    "API_TOKEN_MISSING": 401,
    "USER_NOT_FOUND": 401,
    "API_TOKEN_INVALID": 401,
    "NUMBER_NOT_FOUND": 404,
    "NUMBER_OWNERSHIP": 403,
    "MESSAGE_INVALID": 400,
}

#: The class an answer with no documented code is raised as, by HTTP status (**assumed**).
STATUS_CLASSES: Final[Mapping[int, type[VoipNumberError]]] = {
    401: AuthenticationError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    500: OutcomeUnknownError,
    504: OutcomeUnknownError,
}

#: What to do about each code, added to the error's message.
ERROR_HINTS: Final[Mapping[str, str]] = {
    "USER_ACCOUNT_MISSING": "pass account_id= or set VOIPNUMBER_ACCOUNT_ID",
    "API_TOKEN_MISSING": "pass api_token= or set VOIPNUMBER_API_TOKEN",
    "USER_NOT_FOUND": "check the account id on the Settings page of your VoIP Number account",
    "API_TOKEN_INVALID": (
        "the token does not belong to this account id, or it was regenerated: copy the "
        "current one from Settings and pass it as api_token= (a live client takes it with "
        "client.rotate_api_token())"
    ),
    "NUMBER_NOT_FOUND": "send from a number that exists on VoIP Number and is on your account",
    "NUMBER_OWNERSHIP": "send from a number on this account with SMS capability",
    "MESSAGE_INVALID": "the request was malformed; check from_, to and body",
}
_STATUS_HINTS: Final[Mapping[type[VoipNumberError], str]] = {
    AuthenticationError: "check the account id and API token",
    RateLimitError: "slow down; wait retry_after seconds before sending again",
    ServiceUnavailableError: "the message was not sent; it is safe to try again later",
    OutcomeUnknownError: (
        "the message may have been sent; to try again without risking a duplicate, "
        "send it with idempotency_key= set to this error's idempotency_key"
    ),
}

_EXCERPT_CHARS: Final = 200


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
            return sent_message_from_exact(result) or converter.structure(result, SentMessage)
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
    hint = ERROR_HINTS.get(code or "") or _STATUS_HINTS.get(cls)
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


# --- Inbound webhooks (documented) ----------------------------------------------------

#: The `Host` header the service sends with every delivery.
WEBHOOK_HOST: Final = "api.voipnumber.net"
#: The headers of a delivery, as documented.
WEBHOOK_HEADERS: Final[Mapping[str, str]] = {
    "Content-Type": JSON_CONTENT_TYPE,
    "Host": WEBHOOK_HOST,
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}
#: Every field of a delivery's JSON with its type; `from` is `from_` in the model.
INBOUND_FIELDS: Final = (
    ("status", str), ("from", str), ("to", str), ("type", str), ("body", str),
    ("mdr_timestamp_s", int), ("mdr_created", str), ("mdr_id", str),
)  # fmt: skip
_INBOUND_KNOWN: Final = frozenset(name for name, _ in INBOUND_FIELDS)


def structure_inbound(data: object) -> InboundMessage:
    """The `InboundMessage` a delivery's JSON stands for; `InvalidPayloadError` if none.

    Types are checked exactly (no `"123"` for a number, no `true` for a number): a
    delivery is input from the network, and a mistyped one is refused, not guessed at.
    """
    if not isinstance(data, dict):
        raise InvalidPayloadError(
            f"the delivery must be a JSON object, got a JSON {_json_kind(data)}"
        )
    for name, kind in INBOUND_FIELDS:
        if name not in data:
            raise InvalidPayloadError(f"the delivery has no {name!r} field", field=name)
        value = data[name]
        if type(value) is not kind:
            raise InvalidPayloadError(
                f"the delivery's {name!r} must be a JSON {_json_kind(kind())}, "
                f"got a JSON {_json_kind(value)}",
                field=name,
            )
    try:
        created = parse_service_datetime(data["mdr_created"])
    except ValueError as error:
        raise InvalidPayloadError(
            f"the delivery's 'mdr_created' is not a date: {error}", field="mdr_created"
        ) from None
    return InboundMessage(
        status=data["status"],
        from_=data["from"],
        to=data["to"],
        type=data["type"],
        body=data["body"],
        mdr_timestamp_s=data["mdr_timestamp_s"],
        mdr_created=created,
        mdr_id=data["mdr_id"],
        # Every known field is there (checked above), so the same count means no others.
        extra=(
            {}
            if len(data) == len(_INBOUND_KNOWN)
            else {key: value for key, value in data.items() if key not in _INBOUND_KNOWN}
        ),
    )


def unstructure_inbound(message: InboundMessage) -> dict[str, Any]:
    """A delivery's JSON for `message`, in the documented field order."""
    wire = {
        "status": message.status,
        "from": message.from_,
        "to": message.to,
        "type": message.type,
        "body": message.body,
        "mdr_timestamp_s": message.mdr_timestamp_s,
        "mdr_created": format_service_datetime(message.mdr_created),
        "mdr_id": message.mdr_id,
    }
    return {**wire, **message.extra}


def encode_inbound(message: InboundMessage) -> bytes:
    """The body of a delivery of `message`."""
    return json.dumps(unstructure_inbound(message)).encode()


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


#: The converter for every model; built last, once all its hooks are defined.
converter: Final = make_converter()
