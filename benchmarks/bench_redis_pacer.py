"""The shared pacer's cost: `send_many` paced by a `RedisPacer` against a `LocalPacer`.

The requirement (issue 12): at 2,000 msg/s, pacing through Redis costs under 10% of the
throughput of pacing in the process. Both pace the same rate; the difference is the
round trips to Redis (a lease of 20 ms of turns each) and their CPU.

A sandbox and a `redis-server` run in processes of their own (on the servers' cores,
as on other machines). Each round sends `--messages` messages through `send_many` with
each pacer, in alternating order; the ratio held to target is the median of the rounds'
own ratios (five by default: paired rounds on a shared machine vary by ±15%). Also
printed: the client's CPU per message and Redis round trips per message. Every message
must be accepted, or the benchmark raises. It asserts nothing about time.

The `redis-server` is `VOIPNUMBER_REDIS_SERVER` (nox sets it), else the one on PATH.

    python benchmarks/bench_redis_pacer.py [--messages 6000] [--rounds 5] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator

from _harness import (
    HOST,
    BenchmarkError,
    add_cores_option,
    banner,
    free_port,
    place_on_cores,
    sandbox_process,
    start_server,
    stop_server,
    wait_for_port,
)

from voipnumber_async import AsyncVoipNumber, LocalPacer, Pacer
from voipnumber_async.redis import RedisPacer, pacer_key
from voipnumber_async.sandbox import DEMO_NUMBER, Sandbox

TARGET = 0.9


async def serve(port: int) -> None:
    sandbox = Sandbox(record=False, keep=0)
    await sandbox.start(HOST, port)
    await asyncio.Event().wait()  # until the process is terminated


@contextlib.contextmanager
def redis_process() -> Iterator[str]:
    """A `redis-server` of the benchmark's own; yields its URL."""
    binary = os.environ.get("VOIPNUMBER_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        raise BenchmarkError("no redis-server: set VOIPNUMBER_REDIS_SERVER or install one")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = start_server(
            [binary, "--port", str(port), "--bind", HOST, "--dir", directory, "--save", ""]
        )
        try:
            wait_for_port(process, port, "redis-server")
            yield f"redis://{HOST}:{port}/0"
        finally:
            stop_server(process)


def campaign(count: int) -> Iterator[tuple[str, str, str]]:
    return ((DEMO_NUMBER, f"+4474{i:08d}", f"message {i}") for i in range(count))


async def one_round(
    base_url: str, pacer: Pacer, count: int, concurrency: int
) -> tuple[float, float]:
    """Messages per second and client CPU µs per message of one `send_many` run."""
    async with AsyncVoipNumber(
        "demo-account", "demo-token", base_url=base_url, pacer=pacer, max_connections=concurrency
    ) as client:
        started, cpu = time.perf_counter(), time.process_time()
        run = client.sms.send_many(campaign(count), concurrency=concurrency)
        async with run:
            async for _ in run:
                pass
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    if run.summary.sent != count:
        raise BenchmarkError(f"only {run.summary.sent} of {count} sent: {run.summary}")
    return count / elapsed, cpu / count * 1e6


async def paced_by_redis(
    base_url: str, redis_url: str, rate: float, count: int, concurrency: int, key: str
) -> tuple[float, float, float]:
    """As `one_round`, with a `RedisPacer`; and its round trips per message."""
    async with RedisPacer(redis_url, rate=rate, key=key) as pacer:
        throughput, cpu_us = await one_round(base_url, pacer, count, concurrency)
        return throughput, cpu_us, pacer.round_trips / count


def main(args: argparse.Namespace) -> None:
    print(banner(__file__))
    print(place_on_cores(args.cores))
    with (
        sandbox_process(lambda port: [sys.executable, __file__, "--serve", str(port)]) as (url, _),
        redis_process() as redis_url,
    ):
        ratios, trips = [], []
        for number in range(args.rounds):
            order = ["local", "redis"] if number % 2 == 0 else ["redis", "local"]
            figures: dict[str, tuple[float, float]] = {}
            for name in order:
                if name == "local":
                    pacer = LocalPacer(rate=args.rate)
                    figures[name] = asyncio.run(
                        one_round(url, pacer, args.messages, args.concurrency)
                    )
                else:
                    # A key of each round's own: no turns left over from the last.
                    key = pacer_key(f"bench-{number}")
                    rate, cpu_us, per_message = asyncio.run(
                        paced_by_redis(
                            url, redis_url, args.rate, args.messages, args.concurrency, key
                        )
                    )
                    figures[name] = rate, cpu_us
                    trips.append(per_message)
            ratios.append(figures["redis"][0] / figures["local"][0])
            print(
                f"round {number + 1}: LocalPacer {figures['local'][0]:,.0f} msg/s "
                f"({figures['local'][1]:.0f} CPU µs/msg), RedisPacer {figures['redis'][0]:,.0f} "
                f"msg/s ({figures['redis'][1]:.0f} CPU µs/msg, {trips[-1]:.3f} Redis round "
                f"trips/msg), ratio {ratios[-1]:.3f}",
                flush=True,
            )
    median = statistics.median(ratios)
    verdict = "met" if median >= TARGET else "NOT met"
    print(
        f"RedisPacer / LocalPacer at {args.rate:,.0f} msg/s: {median:.3f} (median of "
        f"{len(ratios)} rounds; target >= {TARGET}: {verdict}); "
        f"{statistics.median(trips):.3f} Redis round trips per message"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=6_000, help="messages per run")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each")
    parser.add_argument("--rate", type=float, default=2_000, help="the pacers' rate, msg/s")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    add_cores_option(parser)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.serve))
    else:
        main(arguments)
