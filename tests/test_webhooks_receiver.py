"""The receiver app over real HTTP, fed by the sandbox as the service would feed it."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from _support import fixture_bytes, fixture_json
from aiohttp import web

from voipnumber_async.sandbox import Sandbox
from voipnumber_async.webhooks import (
    DEFAULT_BODY_TIMEOUT,
    InboundMessage,
    MemoryDeliveryStore,
    create_app,
)

NUMBER = "+447476553275"
SECRET = "s3cr3t-0f-the-hook"


class Receiver:
    """A running create_app whose handler records what it got (or fails on demand)."""

    def __init__(self) -> None:
        self.handled: list[InboundMessage] = []
        self.fail_next = 0
        self.gate: asyncio.Event | None = None
        self.base_url = ""

    async def handle(self, message: InboundMessage) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("the database is down")
        self.handled.append(message)

    def url(self, path: str = f"/webhooks/voipnumber?secret={SECRET}") -> str:
        return self.base_url + path


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recording = Receiver()
    runner, recording.base_url = await serve(create_app(recording.handle, secret=SECRET))
    yield recording
    await runner.cleanup()


@pytest.fixture
async def service(receiver: Receiver) -> AsyncIterator[Sandbox]:
    async with Sandbox(webhooks={NUMBER: receiver.url()}) as sandbox:
        yield sandbox


async def test_a_delivery_reaches_the_handler_and_is_answered_200(
    receiver: Receiver, service: Sandbox
) -> None:
    delivery = await service.deliver_inbound(NUMBER, "Is the shop open?", from_="+447445459147")

    assert delivery.status == 200
    assert json.loads(delivery.answer) == {"status": "accepted", "mdr_id": delivery.message.mdr_id}
    assert receiver.handled == [delivery.message]
    assert receiver.handled[0].body == "Is the shop open?"
    assert service.deliveries == [delivery]


async def test_a_redelivery_reaches_the_handler_once(receiver: Receiver, service: Sandbox) -> None:
    first = await service.deliver_inbound(NUMBER, "once")
    again = await service.redeliver(first)
    third = await service.redeliver(first)

    assert [d.status for d in (first, again, third)] == [200, 200, 200]
    assert [d.attempt for d in (first, again, third)] == [1, 2, 3]
    assert json.loads(again.answer)["status"] == "duplicate"
    assert len(receiver.handled) == 1


async def test_a_handler_that_raises_gets_a_500_and_the_next_delivery_reaches_it_again(
    receiver: Receiver, service: Sandbox
) -> None:
    receiver.fail_next = 1

    failed = await service.deliver_inbound(NUMBER, "retry me")
    retried = await service.redeliver(failed)

    assert failed.status == 500
    assert json.loads(failed.answer)["error"] == "handler_failed"
    assert not failed.accepted
    assert retried.status == 200
    assert [m.mdr_id for m in receiver.handled] == [failed.message.mdr_id]


async def test_the_answer_comes_only_after_the_handler_returned(
    receiver: Receiver, service: Sandbox
) -> None:
    receiver.gate = asyncio.Event()
    pending = asyncio.ensure_future(service.deliver_inbound(NUMBER, "slow"))
    await asyncio.sleep(0.2)

    assert not pending.done()
    receiver.gate.set()
    delivery = await pending
    assert delivery.status == 200


async def test_a_delivery_in_progress_is_answered_409_to_a_concurrent_redelivery(
    receiver: Receiver, service: Sandbox
) -> None:
    receiver.gate = asyncio.Event()
    first = asyncio.ensure_future(service.deliver_inbound(NUMBER, "busy", mdr_id="mdr-busy"))
    await asyncio.sleep(0.2)

    concurrent = await service.deliver_inbound(NUMBER, "busy", mdr_id="mdr-busy")
    receiver.gate.set()

    assert concurrent.status == 409
    assert (await first).status == 200
    assert len(receiver.handled) == 1


async def test_the_secret_can_be_a_path_segment_matched_in_the_handler_not_the_router() -> None:
    recording = Receiver()
    runner, base = await serve(create_app(recording.handle, path="/hooks/{secret}", secret=SECRET))
    try:
        async with Sandbox(webhooks={NUMBER: f"{base}/hooks/{SECRET}"}) as sandbox:
            accepted = await sandbox.deliver_inbound(NUMBER, "path secret")
            sandbox.webhooks[NUMBER] = f"{base}/hooks/guess"
            refused = await sandbox.deliver_inbound(NUMBER, "guess")
    finally:
        await runner.cleanup()

    assert (accepted.status, refused.status) == (200, 403)
    assert json.loads(refused.answer)["error"] == "invalid_secret"
    assert [m.body for m in recording.handled] == ["path secret"]


async def test_while_rotating_the_app_accepts_each_of_several_secrets() -> None:
    recording = Receiver()
    app = create_app(recording.handle, path="/hooks/{secret}", secret=["old-one", "new-one"])
    runner, base = await serve(app)
    try:
        statuses = [
            (await post(f"{base}/hooks/{secret}", fixture_bytes(f"inbound-{kind}.json"),
                        HEADERS))[0]
            for secret, kind in (("old-one", "sms"), ("new-one", "mms"), ("old", "sms"))
        ]  # fmt: skip
    finally:
        await runner.cleanup()

    assert statuses == [200, 200, 403]
    assert [m.type for m in recording.handled] == ["sms", "mms"]


@pytest.mark.parametrize("secret", ["", [], ["ok", ""]])
def test_an_empty_secret_is_refused_when_the_app_is_made(secret: Any) -> None:
    with pytest.raises(ValueError, match="empty secret"):
        create_app(Receiver().handle, secret=secret)


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as answer,
    ):
        return answer.status, await answer.json()


HEADERS = fixture_json("inbound-headers.json")
SMS = fixture_bytes("inbound-sms.json")


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "error"),
    [
        (f"/webhooks/voipnumber?secret={SECRET}", b"{bad", HEADERS, 400, "invalid_payload"),
        (f"/webhooks/voipnumber?secret={SECRET}", b"[]", HEADERS, 400, "invalid_payload"),
        ("/webhooks/voipnumber?secret=nope", SMS, HEADERS, 403, "invalid_secret"),
        ("/webhooks/voipnumber", SMS, HEADERS, 403, "invalid_secret"),
        (f"/webhooks/voipnumber?secret={SECRET}", SMS, {**HEADERS, "Host": "x.example"}, 403,
         "untrusted_host"),
        (f"/webhooks/voipnumber?secret={SECRET}", b" " * 70_000, HEADERS, 413, "payload_too_large"),
        (f"/webhooks/voipnumber?secret={SECRET}", SMS, {**HEADERS, "Content-Type": "text/plain"},
         415, "unsupported_content_type"),
    ],
)  # fmt: skip
async def test_a_bad_delivery_gets_its_status_and_a_short_json_error(
    receiver: Receiver, path: str, body: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    answer_status, answer = await post(receiver.url(path), body, headers)

    assert answer_status == status
    assert answer["error"] == error
    assert answer["message"]
    assert SECRET not in answer["message"]
    assert receiver.handled == []


async def test_a_body_streamed_past_the_cap_is_cut_off_with_413(receiver: Receiver) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    async with (
        aiohttp.ClientSession() as session,
        session.post(receiver.url(), data=chunks(), headers=HEADERS) as answer,
    ):
        assert answer.status == 413


async def test_a_compressed_body_is_held_to_the_cap_once_inflated(receiver: Receiver) -> None:
    bomb = gzip.compress(b" " * (10 * 1024 * 1024))  # ~10 KiB on the wire, 10 MiB inflated

    status, answer = await post(receiver.url(), bomb, {**HEADERS, "Content-Encoding": "gzip"})

    assert (status, answer["error"]) == (413, "payload_too_large")
    assert receiver.handled == []


async def test_a_compressed_delivery_within_the_cap_is_received(receiver: Receiver) -> None:
    status, answer = await post(
        receiver.url(), gzip.compress(SMS), {**HEADERS, "Content-Encoding": "gzip"}
    )

    assert (status, answer["status"]) == (200, "accepted")
    assert [m.mdr_id for m in receiver.handled] == [answer["mdr_id"]]


@pytest.mark.parametrize(
    ("coding", "body", "status", "error"),
    [
        ("x-gzip", gzip.compress(SMS), 200, None),
        ("deflate", zlib.compress(SMS), 200, None),
        ("identity", SMS, 200, None),
        ("gzip", gzip.compress(SMS)[:-8], 400, "invalid_payload"),  # cut short
        ("gzip", gzip.compress(SMS)[:-8] + bytes(8), 400, "invalid_payload"),  # bad checksum
        ("gzip", SMS, 400, "invalid_payload"),  # not compressed at all
        ("br", SMS, 415, "unsupported_content_type"),
        ("x-nonsense", SMS, 415, "unsupported_content_type"),
        ("gzip, gzip", gzip.compress(gzip.compress(SMS)), 415, "unsupported_content_type"),
    ],
)
async def test_a_content_encoding_gets_the_answer_parse_inbound_gives(
    receiver: Receiver, coding: str, body: bytes, status: int, error: str | None
) -> None:
    answer_status, answer = await post(
        receiver.url(), body, {**HEADERS, "Content-Encoding": coding}
    )

    assert (answer_status, answer.get("error")) == (status, error)
    assert len(receiver.handled) == (status == 200)


# --- a slow body ----------------------------------------------------------------------------


async def send_headers_and_stall(
    base_url: str, path: str, headers: dict[str, str], body_part: bytes, length: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send a request's headers with a Content-Length of `length`, then `body_part`, and stop."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"POST {path} HTTP/1.1", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body_part)
    await writer.drain()
    return reader, writer


async def test_a_body_that_stalls_is_answered_408_and_the_connection_closed() -> None:
    recording = Receiver()
    runner, base = await serve(create_app(recording.handle, secret=SECRET, body_timeout=0.05))
    try:
        reader, writer = await send_headers_and_stall(
            base, f"/webhooks/voipnumber?secret={SECRET}", HEADERS, SMS[:40], len(SMS)
        )
        # Everything the server sends until it closes: the test waits on the close itself.
        answer = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
    finally:
        await runner.cleanup()

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body)["error"] == "body_timeout"
    assert recording.handled == []


@pytest.mark.parametrize(
    ("path", "headers", "length", "status", "error"),
    [
        ("/hooks/guess", HEADERS, len(SMS), 403, "invalid_secret"),
        ("/hooks/in?secret=guess", HEADERS, len(SMS), 403, "invalid_secret"),
        (f"/hooks/{SECRET}", {**HEADERS, "Host": "evil.example"}, len(SMS), 403,
         "untrusted_host"),
        (f"/hooks/{SECRET}", {**HEADERS, "Content-Type": "text/plain"}, len(SMS), 415,
         "unsupported_content_type"),
        (f"/hooks/{SECRET}", {**HEADERS, "Content-Encoding": "br"}, len(SMS), 415,
         "unsupported_content_type"),
        (f"/hooks/{SECRET}", HEADERS, 10**9, 413, "payload_too_large"),
    ],
)  # fmt: skip
async def test_the_url_and_headers_are_checked_before_the_body_is_read(
    path: str, headers: dict[str, str], length: int, status: int, error: str
) -> None:
    recording = Receiver()
    # A body deadline far longer than the test waits: only a check made without the body
    # can answer in time.
    app = create_app(recording.handle, path="/hooks/{rest}", secret=SECRET, body_timeout=3600)
    runner, base = await serve(app)
    try:
        reader, writer = await send_headers_and_stall(base, path, headers, b"", length)
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
        answer_length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )  # fmt: skip
        answer = json.loads(await asyncio.wait_for(reader.readexactly(answer_length), 30))
        # Then the server closes: it does not wait on for a body it will not use.
        rest = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
    finally:
        await runner.cleanup()

    assert status_line.startswith(f"HTTP/1.1 {status} ".encode())
    assert answer["error"] == error
    assert rest == b""
    assert recording.handled == []


async def test_a_sender_that_hangs_up_mid_body_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    recording = Receiver()
    runner, base = await serve(create_app(recording.handle, secret=SECRET))
    try:
        path = f"/webhooks/voipnumber?secret={SECRET}"
        _, writer = await send_headers_and_stall(base, path, HEADERS, SMS[:40], len(SMS))
        writer.close()

        async def noted() -> bool:
            return "hung up" in caplog.text

        await wait_until(noted)
    finally:
        await runner.cleanup()

    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert recording.handled == []


def test_the_body_deadline_is_ten_seconds_by_default() -> None:
    assert DEFAULT_BODY_TIMEOUT == 10.0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "5"])
def test_a_body_timeout_that_is_not_a_positive_number_is_refused(timeout: Any) -> None:
    with pytest.raises(ValueError, match="body_timeout must be a positive number of seconds"):
        create_app(Receiver().handle, body_timeout=timeout)


async def test_a_store_of_your_own_decides_what_is_a_duplicate() -> None:
    calls: list[tuple[str, str]] = []

    class Recorded(MemoryDeliveryStore):
        async def claim(self, mdr_id: str) -> Any:
            calls.append(("claim", mdr_id))
            return await super().claim(mdr_id)

        async def complete(self, mdr_id: str) -> None:
            calls.append(("complete", mdr_id))
            await super().complete(mdr_id)

    recording = Receiver()
    runner, base = await serve(create_app(recording.handle, store=Recorded(), expected_host=None))
    try:
        async with Sandbox(webhooks={NUMBER: base + "/webhooks/voipnumber"}) as sandbox:
            delivery = await sandbox.deliver_inbound(NUMBER, mdr_id="mdr-1")
            await sandbox.redeliver(delivery)
    finally:
        await runner.cleanup()

    assert calls == [("claim", "mdr-1"), ("complete", "mdr-1"), ("claim", "mdr-1")]


async def test_the_memory_store_is_bounded_and_forgets_after_its_ttl() -> None:
    now = [0.0]
    store = MemoryDeliveryStore(max_entries=3, ttl_s=60, clock=lambda: now[0])
    for mdr_id in "abcd":
        assert await store.claim(mdr_id) == "new"
        await store.complete(mdr_id)

    assert len(store) == 3
    assert await store.claim("a") == "new"  # the oldest was dropped for the newest
    assert await store.claim("d") == "done"
    now[0] = 61.0
    assert await store.claim("d") == "new"  # forgotten after the ttl


async def test_the_sandbox_reports_an_unreachable_webhook() -> None:
    async with Sandbox(webhooks={NUMBER: "http://127.0.0.1:9/hook"}) as sandbox:
        delivery = await sandbox.deliver_inbound(NUMBER)

    assert delivery.status is None
    assert delivery.error is not None
    assert not delivery.accepted


async def test_a_number_without_a_webhook_says_how_to_set_one() -> None:
    async with Sandbox() as sandbox:
        with pytest.raises(KeyError, match="webhooks"):
            await sandbox.deliver_inbound(NUMBER)


# --- the command line -----------------------------------------------------------------------


def free_port() -> int:
    with Sandbox().serve_in_thread() as probe:
        return probe.port


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_voipnumber_listen_prints_each_message_as_one_json_line() -> None:
    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-m", "voipnumber_async._cli", "listen", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "VOIPNUMBER_WEBHOOK_SECRET": SECRET},
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/webhooks/voipnumber?secret={SECRET}"
        async with Sandbox(webhooks={NUMBER: url}) as sandbox:

            async def accepted() -> bool:
                sandbox.deliveries.clear()
                return (await sandbox.deliver_inbound(NUMBER, "ping", mdr_id="m-ping")).accepted

            await wait_until(accepted)
            delivery = await sandbox.deliver_inbound(NUMBER, "Hello, listener")
            duplicate = await sandbox.redeliver(delivery)
    finally:
        listener.terminate()
        out, err = listener.communicate(timeout=20)

    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["body"] for line in lines] == ["ping", "Hello, listener"]  # no duplicate line
    assert lines[1]["mdr_id"] == delivery.message.mdr_id
    assert lines[1]["from"] == delivery.message.from_
    assert json.loads(duplicate.answer)["status"] == "duplicate"
    assert "Listening on" in err
    assert SECRET not in err  # no access log: the URL holds the secret


async def statuses_from_listen(
    arguments: list[str], secrets: list[str], env: dict[str, str] | None = None
) -> list[int]:
    """Run `voipnumber listen` with `arguments`; the status of a delivery with each secret."""
    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-m", "voipnumber_async._cli", "listen", "--port", str(port),
         "--no-host-check", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/webhooks/voipnumber?secret="

    async def up() -> bool:
        try:
            await post(base, SMS, HEADERS)
        except aiohttp.ClientError:
            return False
        return True

    try:
        await wait_until(up)
        return [(await post(base + secret, SMS, HEADERS))[0] for secret in secrets]
    finally:
        listener.terminate()
        listener.communicate(timeout=20)


async def test_voipnumber_listen_accepts_each_of_several_secrets() -> None:
    statuses = await statuses_from_listen(
        ["--secret", "old-secret", "--secret", "new-secret"],
        ["old-secret", "new-secret", "new", "other"],
    )

    assert statuses == [200, 200, 403, 403]


async def test_voipnumber_listen_takes_the_variables_secret_whole_spaces_and_all() -> None:
    env = {"VOIPNUMBER_WEBHOOK_SECRET": "two words"}

    statuses = await statuses_from_listen([], ["two+words", "two", "words"], env=env)

    assert statuses == [200, 403, 403]


async def test_voipnumber_sandbox_delivers_to_a_webhook_when_told_to(receiver: Receiver) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "voipnumber_async._cli", "sandbox", "--port", str(port),
         "--webhook", f"{NUMBER}={receiver.url()}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    trigger = f"http://127.0.0.1:{port}/sandbox/inbound"
    try:

        async def up() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(
                        trigger, json={"to": NUMBER, "body": "from the CLI sandbox"}
                    ) as answer,
                ):
                    return answer.status == 200 and (await answer.json())["status"] == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_until(up)
    finally:
        server.terminate()
        server.communicate(timeout=20)

    assert [m.body for m in receiver.handled] == ["from the CLI sandbox"]
    assert receiver.handled[0].to == NUMBER


@pytest.mark.parametrize(
    ("arguments", "explained"),
    [
        (["sandbox", "--webhook", "nonsense"], "NUMBER=URL"),
        (["listen", "--secret", ""], "empty secret would accept every delivery"),
    ],
)
def test_a_malformed_flag_is_a_usage_error(arguments: list[str], explained: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voipnumber_async._cli", *arguments],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert explained in result.stderr
