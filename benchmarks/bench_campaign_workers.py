"""Campaign throughput on 1, 2 and 4 worker processes, with and without the Redis pacer.

Three ways of sending `--messages` messages for one account from N processes:

- **local pacer**: N plain processes, each `send_many` over its share with the
  client's own pacer (no rate): what N processes did before the shared pieces, each
  pacing only itself;
- **Redis pacer**: the same N processes, each with a `RedisPacer` on one key at a
  rate far above what they reach, so that its cost is measured, not its limit;
- **Celery campaign**: N real Celery workers (prefork, one pool process each) running
  the campaign's chunks: the Redis pacer, the Redis journal and Celery together.

The sandbox runs in a process of its own, on its own cores where the machine has
them (`--cores split`), and so does redis-server; every sending process shares the
rest. On a 2-core machine the client side
has one core, so N processes share it: the figures show the cost of each piece per
message, not how a cluster scales (see docs/campaigns.md). It asserts nothing about
time.

    python benchmarks/bench_campaign_workers.py [--messages 6000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import (
    BenchmarkError,
    add_cores_option,
    banner,
    place_on_cores,
    place_on_server_cores,
    print_table,
    sandbox_process,
)

from voipnumber_async import AsyncVoipNumber
from voipnumber_async.celery import ChunkOptions, create_app, start_campaign
from voipnumber_async.celery._local import LocalWorker
from voipnumber_async.redis import CampaignStatus, RedisJournal, RedisPacer
from voipnumber_async.redis._local import NO_REDIS_SERVER, RedisServer, redis_server_binary
from voipnumber_async.sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, DEMO_NUMBER, Sandbox

HOST = "127.0.0.1"
PROCESSES = (1, 2, 4)
#: Far above what this machine reaches: the pacer's round trips are measured, not a limit.
UNREACHED_RATE = 20_000.0
CONCURRENCY = 50


async def serve(port: int) -> None:
    sandbox = Sandbox(record=False)
    await sandbox.start(HOST, port)
    await asyncio.Event().wait()  # until the process is terminated


def messages(first: int, count: int) -> list[tuple[str, str, str]]:
    return [(DEMO_NUMBER, f"+4474{n:08d}", f"message {n}") for n in range(first, first + count)]


async def _send_share(base_url: str, redis_url: str | None, first: int, count: int) -> int:
    async with AsyncVoipNumber(
        DEMO_ACCOUNT_ID, DEMO_API_TOKEN, base_url=base_url, max_connections=CONCURRENCY
    ) as client:
        pacer = (
            RedisPacer(redis_url, rate=UNREACHED_RATE, key="bench:pacer")
            if redis_url is not None
            else None
        )
        try:
            run = client.sms.send_many(
                messages(first, count), concurrency=CONCURRENCY, rate_limit=pacer
            )
            async with run:
                async for _ in run:
                    pass
        finally:
            if pacer is not None:
                await pacer.aclose()
    return run.summary.sent


def _process(base_url: str, redis_url: str | None, first: int, count: int, start_at: float) -> None:
    # Every process starts at the same moment, after its imports.
    time.sleep(max(0.0, start_at - time.time()))
    sent = asyncio.run(_send_share(base_url, redis_url, first, count))
    if sent != count:
        raise SystemExit(f"sent {sent} of {count}")


def plain_processes(base_url: str, redis_url: str | None, total: int, processes: int) -> float:
    """Messages per second of `processes` processes sending `total` messages between them."""
    context = multiprocessing.get_context("spawn")
    share = total // processes
    start_at = time.time() + 3.0  # room for the spawned interpreters to import
    children = [
        context.Process(target=_process, args=(base_url, redis_url, n * share, share, start_at))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join()
        if child.exitcode != 0:
            raise BenchmarkError(f"a sending process failed (exit status {child.exitcode})")
    return share * processes / (time.time() - start_at)


def celery_campaign(
    base_url: str, redis: RedisServer, total: int, processes: int, directory: Path
) -> float:
    """Messages per second of a campaign of `total` messages on `processes` Celery workers."""
    environment = {
        **os.environ,
        "VOIPNUMBER_ACCOUNT_ID": DEMO_ACCOUNT_ID,
        "VOIPNUMBER_API_TOKEN": DEMO_API_TOKEN,
        "VOIPNUMBER_BASE_URL": base_url,
        "VOIPNUMBER_REDIS_URL": redis.url,
    }
    name = f"bench-{processes}-{time.time_ns()}"
    with contextlib.ExitStack() as stack:
        for n in range(processes):
            stack.enter_context(LocalWorker(f"bench{processes}-{n}", environment, directory))
        app = create_app(redis=redis.url)
        options = ChunkOptions(rate=UNREACHED_RATE, concurrency=CONCURRENCY)
        started = time.perf_counter()
        asyncio.run(start_campaign(app, name, messages(0, total), options=options, chunk_size=500))
        status = asyncio.run(_wait_done(redis.url, name))
        elapsed = time.perf_counter() - started
    if status.sent != total:
        raise BenchmarkError(f"the campaign sent {status.sent} of {total}: {status}")
    return total / elapsed


async def _wait_done(redis_url: str, name: str) -> CampaignStatus:
    async with RedisJournal(redis_url, name) as journal:
        # Polled: the workers are other processes, with nothing to notify this one.
        while not (status := await journal.status()).done:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        return status


def main(args: argparse.Namespace) -> None:
    print(banner(__file__))
    print(place_on_cores(args.cores))
    binary = redis_server_binary()
    if binary is None:
        raise BenchmarkError(NO_REDIS_SERVER)

    def command(port: int) -> list[str]:
        return [sys.executable, __file__, "--serve", str(port)]

    rates: dict[tuple[str, int], float] = {}
    with contextlib.ExitStack() as stack:
        base_url, _ = stack.enter_context(sandbox_process(command))
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        redis = RedisServer(binary, directory)
        redis.start()
        stack.callback(redis.stop)
        assert redis.process is not None
        place_on_server_cores(redis.process.pid)
        ways: dict[str, Callable[[int], float]] = {
            "local pacer": lambda n: plain_processes(base_url, None, args.messages, n),
            "Redis pacer": lambda n: plain_processes(base_url, redis.url, args.messages, n),
            "Celery campaign": lambda n: celery_campaign(
                base_url, redis, args.messages, n, directory
            ),
        }
        for processes in PROCESSES:
            for way, run in ways.items():
                best = max(run(processes) for _ in range(args.rounds))
                rates[way, processes] = best
                print(f"  {way}, {processes} processes: {best:,.0f} msg/s", flush=True)
    rows = [("processes", *ways, "Redis / local pacer", "scaling (Celery)")]
    for processes in PROCESSES:
        scaling = rates["Celery campaign", processes] / rates["Celery campaign", 1]
        rows.append((
            str(processes),
            *(f"{rates[way, processes]:,.0f} msg/s" for way in ways),
            f"{rates['Redis pacer', processes] / rates['local pacer', processes]:.3f}",
            f"{scaling:.2f}x of 1 ({scaling / processes:.0%} efficiency)",
        ))  # fmt: skip
    print_table(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=6_000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each; the best counts")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    add_cores_option(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.serve))
    else:
        main(arguments)
