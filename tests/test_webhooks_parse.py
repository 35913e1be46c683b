"""parse_inbound: every check, its exception and its status; the fixtures to exact values."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime, timezone
from typing import Any

import pytest
from _support import fixture_bytes, fixture_json
from multidict import CIMultiDict

import voipnumber_sync.webhooks
from voipnumber_async.webhooks import (
    InboundMessage,
    InvalidPayloadError,
    InvalidSecretError,
    PayloadTooLargeError,
    UnsupportedContentTypeError,
    UntrustedHostError,
    WebhookError,
    parse_inbound,
)

HEADERS: dict[str, str] = fixture_json("inbound-headers.json")
SMS = fixture_bytes("inbound-sms.json")


def payload(**changes: Any) -> bytes:
    data = {**fixture_json("inbound-sms.json"), **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def test_the_sms_fixture_parses_to_the_exact_message() -> None:
    assert parse_inbound(SMS, HEADERS) == InboundMessage(
        status="received",
        from_="+447445459147",
        to="+447476553275",
        type="sms",
        body="text sent in SMS",
        mdr_timestamp_s=1716204585,
        mdr_created=datetime(2024, 5, 20, 11, 29, 45, tzinfo=timezone.utc),
        mdr_id="da84a7b1-1a80-4e96-885e-e719d5ec909c",
    )


def test_the_mms_fixture_parses_to_the_exact_message() -> None:
    message = parse_inbound(fixture_bytes("inbound-mms.json"), HEADERS)

    assert (message.type, message.body, message.mdr_id) == (
        "mms",
        "photo attached",
        "0b6f3c1e-5a7d-4d7e-9f0e-2b1c3d4e5f60",
    )
    assert message.mdr_created == datetime(2024, 5, 20, 11, 29, 50, tzinfo=timezone.utc)
    assert message.mdr_created.timestamp() == message.mdr_timestamp_s


def test_an_unknown_type_status_and_extra_fields_are_kept() -> None:
    message = parse_inbound(payload(type="rcs", status="archived", media=["a.jpg"]), HEADERS)

    assert (message.type, message.status) == ("rcs", "archived")
    assert message.extra == {"media": ["a.jpg"]}


def test_the_sync_package_offers_the_same_function_and_classes() -> None:
    assert voipnumber_sync.webhooks.parse_inbound is parse_inbound
    assert voipnumber_sync.webhooks.InboundMessage is InboundMessage
    assert voipnumber_sync.webhooks.WebhookError is WebhookError
    assert voipnumber_sync.InvalidSecretError is InvalidSecretError


# --- size ---------------------------------------------------------------------------------


def test_a_body_over_the_cap_is_payload_too_large() -> None:
    with pytest.raises(PayloadTooLargeError) as caught:
        parse_inbound(b" " * (64 * 1024 + 1), HEADERS)
    assert caught.value.http_status == 413


def test_the_cap_is_inclusive_and_configurable() -> None:
    assert parse_inbound(SMS, HEADERS, max_bytes=len(SMS)).mdr_id
    with pytest.raises(PayloadTooLargeError):
        parse_inbound(SMS, HEADERS, max_bytes=len(SMS) - 1)


# --- the order of the checks: the URL and the headers before the body -----------------------


@pytest.mark.parametrize(
    ("url", "headers", "error"),
    [
        ("/hook?secret=wrong", {**HEADERS, "Host": "evil", "Content-Type": "text/plain"},
         InvalidSecretError),
        ("/hook?secret=s3cr3t", {**HEADERS, "Host": "evil", "Content-Type": "text/plain"},
         UntrustedHostError),
        ("/hook?secret=s3cr3t", {**HEADERS, "Content-Type": "text/plain"},
         UnsupportedContentTypeError),
        ("/hook?secret=s3cr3t", {**HEADERS, "Content-Encoding": "br"},
         UnsupportedContentTypeError),
        ("/hook?secret=s3cr3t", HEADERS, PayloadTooLargeError),
    ],
)  # fmt: skip
def test_the_url_and_headers_are_checked_before_the_size_of_the_body(
    url: str, headers: dict[str, str], error: type[WebhookError]
) -> None:
    with pytest.raises(error):
        parse_inbound(b"[" * 70_000, headers, url=url, secret="s3cr3t")


# --- payload ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"null", b"42"]
)
def test_a_body_that_is_not_a_json_object_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidPayloadError) as caught:
        parse_inbound(body, HEADERS)
    assert caught.value.http_status == 400


FIELDS = ["status", "from", "to", "type", "body", "mdr_timestamp_s", "mdr_created", "mdr_id"]


@pytest.mark.parametrize("field", FIELDS)
def test_a_missing_field_is_named(field: str) -> None:
    with pytest.raises(InvalidPayloadError, match=repr(field)) as caught:
        parse_inbound(payload(**{field: ...}), HEADERS)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", None),
        ("from", 447445459147),
        ("to", ["+447476553275"]),
        ("type", {"kind": "sms"}),
        ("body", 1),
        ("mdr_timestamp_s", "1716204585"),
        ("mdr_timestamp_s", True),
        ("mdr_timestamp_s", 1716204585.5),
        ("mdr_created", 1716204585),
        ("mdr_id", None),
    ],
)
def test_a_mistyped_field_is_named(field: str, value: object) -> None:
    with pytest.raises(InvalidPayloadError, match=repr(field)) as caught:
        parse_inbound(payload(**{field: value}), HEADERS)
    assert caught.value.field == field


def test_an_unreadable_date_is_named() -> None:
    with pytest.raises(InvalidPayloadError, match="mdr_created") as caught:
        parse_inbound(payload(mdr_created="yesterday"), HEADERS)
    assert caught.value.field == "mdr_created"


# --- content type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", 'Application/JSON;charset="UTF-8"', "application/json"],
)
def test_a_json_content_type_with_or_without_charset_is_accepted(content_type: str) -> None:
    assert parse_inbound(SMS, {**HEADERS, "Content-Type": content_type}).mdr_id


def test_the_declared_charset_decodes_the_body() -> None:
    body = payload(body="Grüße").decode().replace("\\u00fc", "ü").replace("\\u00df", "ß")
    message = parse_inbound(
        body.encode("latin-1"), {**HEADERS, "Content-Type": "application/json; charset=latin-1"}
    )
    assert message.body == "Grüße"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=klingon"],
)
def test_another_content_type_is_unsupported(content_type: str) -> None:
    with pytest.raises(UnsupportedContentTypeError) as caught:
        parse_inbound(SMS, {**HEADERS, "Content-Type": content_type})
    assert caught.value.http_status == 415


def test_a_missing_content_type_is_unsupported() -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "Content-Type"}
    with pytest.raises(UnsupportedContentTypeError):
        parse_inbound(SMS, headers)


@pytest.mark.parametrize(
    ("charset", "why"),
    [
        ("rot13", "not a text encoding"),  # a codec, of str to str: LookupError on decode
        ("base64", "not a text encoding"),  # of bytes to bytes
        ("zlib", "not a text encoding"),
        ("undefined", "not a text encoding"),  # a text codec that refuses every byte
        ("unicode_escape", "not a text encoding"),  # Python's source escapes, not a charset
        ("utf\x008", "not one Python knows"),  # a NUL: ValueError from codecs.lookup
        ("utf-8\udcff", "not one Python knows"),  # a lone surrogate: UnicodeEncodeError
        ("klingon", "not one Python knows"),
    ],
)
def test_a_charset_python_cannot_decode_text_with_is_unsupported(charset: str, why: str) -> None:
    headers = {**HEADERS, "Content-Type": f"application/json; charset={charset}"}
    with pytest.raises(UnsupportedContentTypeError, match=why) as caught:
        parse_inbound(SMS, headers)
    assert caught.value.http_status == 415


@pytest.mark.parametrize("charset", ["utf-16", "UTF-32", "utf-8-sig", "ascii", "cp1252"])
def test_a_body_in_the_text_encoding_it_declares_is_read(charset: str) -> None:
    headers = {**HEADERS, "Content-Type": f"application/json; charset={charset}"}
    assert parse_inbound(SMS.decode().encode(charset), headers) == parse_inbound(SMS, HEADERS)


def test_a_body_that_is_not_in_its_declared_charset_is_invalid() -> None:
    headers = {**HEADERS, "Content-Type": "application/json; charset=utf-16"}
    with pytest.raises(InvalidPayloadError, match="not valid utf-16") as caught:
        parse_inbound(b"{}\x00", headers)  # an odd number of bytes
    assert caught.value.http_status == 400


def test_json_nested_deeper_than_python_recurses_is_invalid() -> None:
    with pytest.raises(InvalidPayloadError, match="nested too deeply") as caught:
        parse_inbound(b"[" * 60_000, HEADERS)  # under the 64 KiB cap
    assert caught.value.http_status == 400


def test_a_date_in_a_year_no_datetime_holds_is_invalid() -> None:
    with pytest.raises(InvalidPayloadError, match="mdr_created") as caught:
        parse_inbound(payload(mdr_created=f"20 May {10**20} 11:29:45"), HEADERS)
    assert caught.value.field == "mdr_created"


# --- content encoding ---------------------------------------------------------------------


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("GZIP", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),  # without the zlib header: common, and taken
        ("identity", bytes),
        ("identity, gzip", gzip.compress),
    ],
)
def test_a_compressed_delivery_is_inflated(coding: str, compress: Any) -> None:
    headers = {**HEADERS, "Content-Encoding": coding}
    assert parse_inbound(compress(SMS), headers) == parse_inbound(SMS, HEADERS)


def test_repeated_content_encoding_lines_are_read_as_the_one_list_they_make() -> None:
    # aiohttp hands over every line of a repeated header; RFC 9110 reads them as one list.
    headers = CIMultiDict({k: v for k, v in HEADERS.items() if k.lower() != "content-encoding"})
    headers.add("Content-Encoding", "gzip")
    headers.add("Content-Encoding", "identity")
    assert parse_inbound(gzip.compress(SMS), headers) == parse_inbound(SMS, HEADERS)

    headers.add("Content-Encoding", "gzip")
    with pytest.raises(UnsupportedContentTypeError, match="more than once"):
        parse_inbound(gzip.compress(gzip.compress(SMS)), headers)


def test_a_delivery_that_inflates_past_the_cap_is_too_large() -> None:
    bomb = gzip.compress(b" " * (10 * 1024 * 1024))  # ~10 KiB as sent, 10 MiB inflated
    with pytest.raises(PayloadTooLargeError, match="inflates") as caught:
        parse_inbound(bomb, {**HEADERS, "Content-Encoding": "gzip"})
    assert caught.value.http_status == 413


def test_the_inflated_cap_is_inclusive() -> None:
    headers = {**HEADERS, "Content-Encoding": "gzip"}
    assert parse_inbound(gzip.compress(SMS), headers, max_bytes=len(SMS)).mdr_id
    with pytest.raises(PayloadTooLargeError):
        parse_inbound(gzip.compress(SMS), headers, max_bytes=len(SMS) - 1)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (gzip.compress(SMS)[:-8] + b"\x00" * 8, "corrupt"),  # a checksum that does not match
        (SMS, "corrupt"),  # not compressed at all
        (gzip.compress(SMS)[:-8], "cut short"),  # the trailer lost
        (b"", "cut short"),
        (gzip.compress(SMS) + b"more", "other data after"),
    ],
)
def test_compressed_data_that_is_not_intact_is_invalid(body: bytes, why: str) -> None:
    with pytest.raises(InvalidPayloadError, match=why) as caught:
        parse_inbound(body, {**HEADERS, "Content-Encoding": "gzip"})
    assert caught.value.http_status == 400


@pytest.mark.parametrize(
    ("coding", "why"),
    [
        ("br", "not gzip or deflate"),
        ("zstd", "not gzip or deflate"),
        ("compress", "not gzip or deflate"),
        ("rot13", "not gzip or deflate"),
        ("gzip, gzip", "more than once"),
    ],
)
def test_a_content_encoding_not_inflated_is_unsupported(coding: str, why: str) -> None:
    with pytest.raises(UnsupportedContentTypeError, match=why) as caught:
        parse_inbound(gzip.compress(SMS), {**HEADERS, "Content-Encoding": coding})
    assert caught.value.http_status == 415
    assert caught.value.reason == "unsupported_content_type"


# --- host ---------------------------------------------------------------------------------


def test_header_names_match_in_any_case() -> None:
    headers = {name.upper(): value for name, value in HEADERS.items()}
    assert parse_inbound(SMS, headers).mdr_id


@pytest.mark.parametrize("host", ["evil.example", "", "api.voipnumber.net.evil.example"])
def test_another_host_is_untrusted(host: str) -> None:
    with pytest.raises(UntrustedHostError) as caught:
        parse_inbound(SMS, {**HEADERS, "Host": host})
    assert caught.value.http_status == 403


def test_a_host_with_a_port_or_in_capitals_is_the_service() -> None:
    assert parse_inbound(SMS, {**HEADERS, "Host": "API.voipnumber.net:443"}).mdr_id


def test_behind_a_proxy_the_forwarded_host_is_checked() -> None:
    headers = {**HEADERS, "Host": "internal:8080", "X-Forwarded-Host": "api.voipnumber.net"}
    assert parse_inbound(SMS, headers).mdr_id
    headers["X-Forwarded-Host"] = "evil.example"
    with pytest.raises(UntrustedHostError):
        parse_inbound(SMS, headers)


@pytest.mark.parametrize(
    ("forwarded", "accepted"),
    [
        ("api.voipnumber.net, proxy.internal", True),
        ("api.voipnumber.net,proxy.internal, edge.internal", True),
        ("evil.example, api.voipnumber.net", False),
        ("proxy.internal, api.voipnumber.net", False),
    ],
)
def test_x_forwarded_host_with_several_hops_uses_the_first(forwarded: str, accepted: bool) -> None:
    headers = {**HEADERS, "Host": "internal:8080", "X-Forwarded-Host": forwarded}
    if accepted:
        assert parse_inbound(SMS, headers).mdr_id
    else:
        with pytest.raises(UntrustedHostError, match=r"evil\.example|proxy\.internal"):
            parse_inbound(SMS, headers)


def test_x_forwarded_host_repeated_as_several_lines_uses_the_first_line() -> None:
    headers = CIMultiDict(HEADERS)
    headers.add("X-Forwarded-Host", "api.voipnumber.net")
    headers.add("X-Forwarded-Host", "proxy.internal")
    assert parse_inbound(SMS, headers).mdr_id

    reversed_lines = CIMultiDict(HEADERS)
    reversed_lines.add("X-Forwarded-Host", "proxy.internal")
    reversed_lines.add("X-Forwarded-Host", "api.voipnumber.net")
    with pytest.raises(UntrustedHostError):
        parse_inbound(SMS, reversed_lines)


def test_x_forwarded_host_given_twice_in_a_plain_mapping_uses_the_first() -> None:
    # Starlette's `request.headers.items()` yields a repeated header once per line.
    class Lines(dict[str, str]):
        def items(self) -> Any:
            return [*HEADERS.items(), ("x-forwarded-host", "api.voipnumber.net"),
                    ("X-Forwarded-Host", "proxy.internal")]  # fmt: skip

    assert parse_inbound(SMS, Lines()).mdr_id


def test_the_host_check_can_be_changed_or_turned_off() -> None:
    headers = {**HEADERS, "Host": "hooks.example.com"}
    assert parse_inbound(SMS, headers, expected_host=["hooks.example.com", "x"]).mdr_id
    assert parse_inbound(SMS, headers, expected_host=None).mdr_id


# --- secret -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/webhooks/voipnumber?secret=s3cr3t",
        "/webhooks/voipnumber/s3cr3t",
        "https://hooks.example.com/in/s3cr3t/sms?x=1",
        "/webhooks/voipnumber?a=1&secret=s3cr3t",
    ],
)
def test_the_secret_may_be_a_path_segment_or_a_query_parameter(url: str) -> None:
    assert parse_inbound(SMS, HEADERS, url=url, secret="s3cr3t").mdr_id


@pytest.mark.parametrize(
    "url",
    ["/webhooks/voipnumber", "/webhooks/voipnumber?secret=wrong", "/webhooks/s3cr3tx",
     "/webhooks/voipnumber?token=s3cr3t"],
)  # fmt: skip
def test_a_url_without_the_secret_is_refused(url: str) -> None:
    with pytest.raises(InvalidSecretError) as caught:
        parse_inbound(SMS, HEADERS, url=url, secret="s3cr3t")
    assert caught.value.http_status == 403
    assert "s3cr3t" not in str(caught.value)


def test_the_secret_is_checked_before_the_payload_is_read() -> None:
    with pytest.raises(InvalidSecretError):
        parse_inbound(b"{not json", {"Host": "evil"}, url="/hook", secret="s3cr3t")


def test_a_secret_without_a_url_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="url="):
        parse_inbound(SMS, HEADERS, secret="s3cr3t")
    with pytest.raises(ValueError, match="empty secret"):
        parse_inbound(SMS, HEADERS, url="/hook", secret="")


@pytest.mark.parametrize("url", ["/webhooks/voipnumber?secret=old1", "/webhooks/new2/sms"])
def test_while_rotating_each_of_several_secrets_is_accepted(url: str) -> None:
    assert parse_inbound(SMS, HEADERS, url=url, secret=["old1", "new2"]).mdr_id


def test_while_rotating_a_url_with_neither_secret_is_refused() -> None:
    with pytest.raises(InvalidSecretError):
        parse_inbound(SMS, HEADERS, url="/webhooks/voipnumber?secret=old", secret=["old1", "new2"])


@pytest.mark.parametrize("secrets", [[], ["old1", ""]])
def test_no_secret_in_a_list_or_an_empty_one_is_a_programming_error(secrets: list[str]) -> None:
    with pytest.raises(ValueError, match="empty secret"):
        parse_inbound(SMS, HEADERS, url="/hook?secret=old1", secret=secrets)
