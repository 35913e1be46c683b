"""`voipnumber sandbox`, run as users run it (a process of its own), and `--sandbox`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _support import FROM, TO
from aiohttp import web
from click.testing import CliRunner

from voipnumber_async import (
    AsyncVoipNumber,
    OutcomeUnknownError,
    RateLimitError,
    ServiceUnavailableError,
)
from voipnumber_async._cli._group import cli
from voipnumber_async.sandbox import FAULT_KINDS, INBOUND_TRIGGER_PATH, Sandbox

NUMBER = "+447476553275"
COMMAND = [sys.executable, "-m", "voipnumber_async._cli", "sandbox", "--port", "0"]
STARTUP_TIMEOUT_S = 30


class Running:
    """A `voipnumber sandbox` process, and the settings its `export` lines gave."""

    def __init__(self, process: asyncio.subprocess.Process, env: dict[str, str]) -> None:
        self.process = process
        self.env = env

    def client(self, **options: Any) -> AsyncVoipNumber:
        return AsyncVoipNumber(
            account_id=self.env["VOIPNUMBER_ACCOUNT_ID"],
            api_token=self.env["VOIPNUMBER_API_TOKEN"],
            base_url=self.env["VOIPNUMBER_BASE_URL"],
            **options,
        )


async def start(*args: str) -> Running:
    """Start `voipnumber sandbox --port 0 ARGS`; read its address from its stdout."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    try:
        while len(env) < 3:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT_S)
            assert line, f"the sandbox exited ({await process.wait()}) before its exports"
            name, _, value = line.decode().strip().removeprefix("export ").partition("=")
            env[name] = value
    except BaseException:
        process.kill()
        await process.wait()
        raise
    return Running(process, env)


@pytest.fixture
async def stop_after() -> AsyncIterator[list[Running]]:
    started: list[Running] = []
    yield started
    for running in started:
        running.process.terminate()
        await running.process.wait()


async def test_a_fault_given_on_the_command_line_hits_the_sends(
    stop_after: list[Running],
) -> None:
    sandbox = await start("--fault", "outcome_unknown:1.0")
    stop_after.append(sandbox)

    async with sandbox.client(max_retries=0) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.sms.send(FROM, TO, "maybe sent")

    assert caught.value.http_status == 500
    assert caught.value.may_have_been_sent


async def test_faults_without_a_rate_hit_every_send_and_several_can_be_given(
    stop_after: list[Running],
) -> None:
    sandbox = await start("--fault", "unavailable", "--fault", "outcome_unknown:0.5")
    stop_after.append(sandbox)

    async with sandbox.client(max_retries=0) as client:
        for _ in range(5):  # the first fault, at rate 1, hits each before the second
            with pytest.raises(ServiceUnavailableError) as caught:
                await client.sms.send(FROM, TO, "refused")
            assert not caught.value.may_have_been_sent


async def test_without_faults_the_sandbox_answers_normally(stop_after: list[Running]) -> None:
    sandbox = await start()
    stop_after.append(sandbox)

    async with sandbox.client(max_retries=0) as client:
        message = await client.sms.send(FROM, TO, "normal")

    assert message.status == "queued"


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("nope", "unknown fault kind 'nope': expected KIND[:RATE] with KIND one of "
         + ", ".join(FAULT_KINDS)),
        ("outcome_unknown:2", "a fault's rate must be a number in (0, 1]"),
        ("outcome_unknown:often", "a fault's rate must be a number in (0, 1]"),
    ],
)  # fmt: skip
def test_a_bad_fault_is_a_usage_error_that_lists_what_is_valid(spec: str, error: str) -> None:
    result = subprocess.run(
        [*COMMAND, "--fault", spec],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "400"},
        check=False,
    )

    assert result.returncode == 2
    assert "Invalid value for '--fault'" in result.stderr
    assert error in " ".join(result.stderr.split()), result.stderr
    assert "export" not in result.stdout  # refused before it served


def test_the_help_lists_every_fault_kind() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"], terminal_width=400)

    assert result.exit_code == 0
    assert "--fault KIND[:RATE]" in result.output
    for kind in FAULT_KINDS:
        assert kind in result.output


# --- inbound messages, as docs/cli.md shows them -------------------------------------------


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"status": "accepted"})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", received
    await runner.cleanup()


async def test_the_standalone_sandbox_delivers_and_redelivers_by_mdr_id(
    stop_after: list[Running], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    sandbox = await start("--webhook", f"{NUMBER}={url}")
    stop_after.append(sandbox)
    trigger = sandbox.env["VOIPNUMBER_BASE_URL"] + INBOUND_TRIGGER_PATH
    order = {"to": NUMBER, "body": "Hello", "from": "+447483866525"}

    async with aiohttp.ClientSession() as session:
        async with session.post(trigger, json=order) as answer:
            first = await answer.json()
        async with session.post(trigger, json={**order, "mdr_id": first["mdr_id"]}) as answer:
            again = await answer.json()
        async with session.post(trigger, json={"to": 447476553275}) as answer:
            malformed = answer.status, await answer.json()

    assert (first["status"], first["attempt"]) == (200, 1)
    assert (again["mdr_id"], again["attempt"]) == (first["mdr_id"], 2)
    assert received[0] == received[1]
    assert malformed[0] == 400
    assert malformed[1]["error"].startswith("'to' must be an E.164 number as a string")


# --- the sandbox embedded in send and bulk --------------------------------------------------


def test_the_embedded_sandbox_of_bulk_keeps_counts_not_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Sandbox] = []
    original_init = Sandbox.__init__

    def recording_init(self: Sandbox, **settings: Any) -> None:
        original_init(self, **settings)
        made.append(self)

    monkeypatch.setattr(Sandbox, "__init__", recording_init)
    campaign = tmp_path / "campaign.csv"
    campaign.write_text("to,body\n" + "".join(f"+4474{n:08d},hi {n}\n" for n in range(40)))

    result = CliRunner().invoke(cli, ["bulk", "--sandbox", "--from", FROM, str(campaign)])

    assert result.exit_code == 0, result.output
    (sandbox,) = made
    assert (sandbox.record, sandbox.keep, sandbox.keep_keys) == (False, 0, 100_000)
    assert (sandbox.accepted_count, sandbox.status_counts[200]) == (40, 40)
    assert (sandbox.requests, sandbox.messages) == ([], [])
    assert sandbox.remembered_keys == 40
    assert sandbox.error_counts == {}


async def test_rate_limit_on_the_command_line_answers_429_past_it(
    stop_after: list[Running],
) -> None:
    sandbox = await start("--rate-limit", "1")
    stop_after.append(sandbox)

    async with sandbox.client(max_retries=0) as client:
        await client.sms.send(FROM, TO, "within the limit")
        with pytest.raises(RateLimitError) as caught:  # 1 a second: the next is early
            await client.sms.send(FROM, TO, "past it")

    assert caught.value.code == "RATE_LIMITED"
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
