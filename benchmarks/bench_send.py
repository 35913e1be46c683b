"""Send throughput: the SDK against a bare aiohttp loop, to the sandbox, in one process.

The requirement: sending 20,000 messages at concurrency 100 to the sandbox in one
process, the SDK's throughput is at least 0.9x that of a bare aiohttp loop posting
the same requests to the same server in the same run.

Both clients send the same requests (the same JSON body bytes, the contract headers and
a fresh Idempotency-Key per message), read the whole answer and parse its JSON. Rounds
alternate between them (bare, SDK, SDK, bare, ...) so that drift in the machine hits both
alike. The ratio held to target is the median of each pair of rounds' own ratio (run
back to back, on the machine as it was then); best against best is shown beside it. Every
round checks that the sandbox accepted exactly one message per send, each with its own
key: a benchmark that silently measures errors is worthless.

A second, smaller figure: sequential sends (one at a time), the median time per send.

It prints figures and asserts nothing about time.

    python benchmarks/bench_send.py [--messages 20000] [--concurrency 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import aiohttp
from _harness import (
    BenchmarkError,
    Round,
    banner,
    bare_headers,
    best,
    print_latency_table,
    print_round,
    print_throughput_table,
    report_ratio,
    rotations,
    run_workers,
)

from voipnumber_async import AsyncVoipNumber
from voipnumber_async._wire.requests import base_headers, encode_send_request
from voipnumber_async.sandbox import DEMO_NUMBER, Sandbox

TARGET_RATIO = 0.9
FROM = DEMO_NUMBER
TO = "+447483866525"
TEXT = "Your order 12345 has shipped and will arrive on Thursday. Thank you for shopping!"
SEND_PATH = "/v1/sms/send"

#: One send of one message: the only thing that differs between the two clients.
SendOne = Callable[[], Awaitable[None]]


# --- the two clients ------------------------------------------------------------------


class Bare:
    """A bare aiohttp loop: what an application would write without the SDK."""

    def __init__(self, sandbox: Sandbox, concurrency: int) -> None:
        settings = sandbox.client_settings()
        self.url = sandbox.base_url + SEND_PATH
        # The same bytes the SDK sends (checked against it in main()).
        self.payload = json.dumps(
            {"from": FROM, "to": TO, "body": TEXT}, ensure_ascii=False
        ).encode()
        self.headers = bare_headers(settings["account_id"], settings["api_token"])
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def send(self) -> None:
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        async with self.session.post(self.url, data=self.payload, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise BenchmarkError(f"bare send: HTTP {response.status}: {body[:200]!r}")
            json.loads(body)

    async def aclose(self) -> None:
        await self.session.close()


class Sdk:
    """The SDK, used the way its documentation says."""

    def __init__(self, sandbox: Sandbox, concurrency: int) -> None:
        self.client = AsyncVoipNumber(**sandbox.client_settings(), max_connections=concurrency)

    async def send(self) -> None:
        await self.client.sms.send(FROM, TO, TEXT)

    async def aclose(self) -> None:
        await self.client.aclose()


# --- measuring --------------------------------------------------------------------------


async def run_pool(send: SendOne, messages: int, concurrency: int) -> None:
    """`messages` sends by `concurrency` workers pulling from one shared counter."""
    counter: Iterator[int] = iter(range(messages))

    async def worker() -> None:
        for _ in counter:
            await send()

    await run_workers(worker() for _ in range(min(concurrency, messages)))


def check_accepted(sandbox: Sandbox, expected: int, who: str) -> None:
    """Fail loudly unless the sandbox accepted exactly `expected` distinct messages."""
    accepted = len(sandbox.messages)
    keys = len({message.idempotency_key for message in sandbox.messages})
    if sandbox.request_count != expected or accepted != expected or keys != expected:
        raise BenchmarkError(
            f"{who}: {expected} sends, but the sandbox saw {sandbox.request_count} requests, "
            f"accepted {accepted} messages with {keys} distinct idempotency keys"
        )


async def timed_round(
    sandbox: Sandbox, send: SendOne, messages: int, concurrency: int, who: str
) -> Round:
    sandbox.reset()
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await run_pool(send, messages, concurrency)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    check_accepted(sandbox, messages, who)
    sandbox.reset()
    return Round(messages, wall1 - wall0, cpu1 - cpu0)


async def sequential_us(sandbox: Sandbox, send: SendOne, sends: int, who: str) -> list[float]:
    """The time of each of `sends` sends made one at a time, in µs."""
    sandbox.reset()
    gc.collect()
    times = []
    clock = time.perf_counter
    for _ in range(sends):
        start = clock()
        await send()
        times.append((clock() - start) * 1e6)
    check_accepted(sandbox, sends, who)
    sandbox.reset()
    return times


# --- reporting --------------------------------------------------------------------------


def report_throughput(
    args: argparse.Namespace, bare_rounds: list[Round], sdk_rounds: list[Round]
) -> None:
    bare, sdk = best(bare_rounds), best(sdk_rounds)
    overhead_us = (1 / sdk.rate - 1 / bare.rate) * 1e6
    print(
        f"\nThroughput: {args.messages:,} messages at concurrency {args.concurrency}, "
        f"best of {args.rounds} rounds each (all rounds: msg/s)"
    )
    print_throughput_table(
        [("bare aiohttp", bare_rounds), ("SDK", sdk_rounds)], rounds_header="rounds"
    )
    print()
    report_ratio("ratio SDK/bare", sdk_rounds, bare_rounds, TARGET_RATIO)
    print(f"  per-send overhead        {overhead_us:.1f} µs  (1/SDK rate - 1/bare rate)")
    print(
        f"  CPU per send, SDK - bare {sdk.cpu_us_per_message - bare.cpu_us_per_message:.1f} µs  "
        "(process CPU, client and sandbox together)"
    )


def report_sequential(sends: int, bare_us: list[float], sdk_us: list[float]) -> None:
    print(f"\nSequential: {sends:,} sends one at a time, per send (µs)")
    print_latency_table([("bare aiohttp", bare_us), ("SDK", sdk_us)])
    difference = statistics.median(sdk_us) - statistics.median(bare_us)
    ratio = statistics.median(bare_us) / statistics.median(sdk_us)
    print(f"\n  SDK - bare (medians)     {difference:.1f} µs;  throughput ratio {ratio:.3f}")


# --- main -------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    print(
        f"{banner('bench_send')}, asyncio default loop; "
        "client and sandbox share one process and one event loop"
    )
    async with Sandbox(record=False) as sandbox:
        bare = Bare(sandbox, args.concurrency)
        sdk = Sdk(sandbox, args.concurrency)
        try:
            # The same request bytes on the wire, or the comparison means nothing.
            settings = sandbox.client_settings()
            if encode_send_request(FROM, TO, TEXT) != bare.payload:
                raise BenchmarkError("the bare loop's body differs from the SDK's")
            if base_headers(settings["account_id"], settings["api_token"]) != bare.headers:
                raise BenchmarkError("the bare loop's headers differ from the SDK's")

            clients: dict[str, SendOne] = {"bare": bare.send, "SDK": sdk.send}
            for who, send in clients.items():  # warm up: connections, caches, code paths
                await timed_round(sandbox, send, args.warmup, args.concurrency, who)

            results: dict[str, list[Round]] = {"bare": [], "SDK": []}
            for n, order in enumerate(rotations(args.rounds, ("bare", "SDK"))):
                for who in order:
                    result = await timed_round(
                        sandbox, clients[who], args.messages, args.concurrency, who
                    )
                    results[who].append(result)
                    print_round(n + 1, who, 4, result, busy=False)
            report_throughput(args, results["bare"], results["SDK"])

            if args.sequential:
                for who, send in clients.items():
                    await sequential_us(sandbox, send, min(200, args.sequential), who)
                seq: dict[str, list[float]] = {}
                for who in ("bare", "SDK"):
                    seq[who] = await sequential_us(sandbox, clients[who], args.sequential, who)
                report_sequential(args.sequential, seq["bare"], seq["SDK"])
        finally:
            await bare.aclose()
            await sdk.aclose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="sends per round")
    parser.add_argument("--concurrency", type=int, default=100, help="workers (and connections)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each client")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed sends of each first")
    parser.add_argument(
        "--sequential", type=int, default=2_000, help="sequential sends of each (0: skip)"
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.concurrency, args.rounds, args.warmup) < 1 or args.sequential < 0:
        parser.error("--messages, --concurrency, --rounds and --warmup must be at least 1")
    if 0 < args.sequential < 10:
        parser.error("--sequential must be 0 or at least 10")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
