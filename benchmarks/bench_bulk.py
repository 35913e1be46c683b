"""Bulk sending: `send_many` against a bare aiohttp worker pool, its journal, its memory.

The requirements:

- Throughput: 100,000 messages at concurrency 100 to the sandbox (server in a separate
  process): at least 0.9x a bare aiohttp worker-pool loop doing the same, same run.
- Journal: writes are batched so the journal does not cap throughput (target: not
  below 0.9x the run without it).
- Memory: 1,000,000 messages from a generator: peak RSS growth under 100 MiB, and not
  growing with the count (RSS at 100k and at 1M).

The sandbox runs in a process of its own, started by this script (`--serve PORT`):
a `Sandbox(record=False)` with nothing logged, whose accepted messages and stored
idempotent answers are counted and dropped every `TRIM_EVERY` messages, so that its
memory and speed stay the same over a million messages. (`voipnumber sandbox` keeps
them all and logs every request.) This process's CPU is spent on the clients alone,
and by default the two processes run on cores of their own (`--cores`).

- Throughput: each round sends `--messages` messages, taken one at a time from a
  generator of `(from_, to, body)` tuples (a different recipient each), by three
  clients: a bare aiohttp loop (`--concurrency` workers pulling from the generator, one
  `ClientSession` with as many connections, each posting the same JSON bytes and
  contract headers as the SDK, with a fresh Idempotency-Key, reading and parsing the
  answer); `client.sms.send_many(generator, concurrency=...)` consumed with
  `async for`; and the same with `journal=` a fresh SQLite file. The order of the three
  rotates from round to round so that drift in the machine hits all alike. The ratios
  held to target are the medians of each round's own ratios (its clients ran back to
  back, on the machine as it was then); best against best is shown beside them. Each round shows how
  busy the two processes were: both are CPU-bound, so a round in which they got well
  under two cores measured a busy machine, not the clients, and is marked (!).
- Memory: in a fresh process (so that the throughput rounds do not weigh on its RSS),
  `send_many` over a generator of `--memory-messages` messages, no journal; RSS
  (`VmRSS`) at the start, after every 100,000 results and at the end, and the peak
  (`VmHWM`), from /proc/self/status.

Every message must be sent, the sandbox must have accepted exactly one message per
send, and the journal must hold every message as sent, or the benchmark raises: a
benchmark that silently measures errors is worthless. It prints figures and asserts
nothing about time.

    python benchmarks/bench_bulk.py [--messages 100000] [--rounds 5] [--memory-messages 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
from _harness import (
    HOST,
    BenchmarkError,
    Round,
    add_cores_option,
    banner,
    bare_headers,
    best,
    delta,
    place_on_cores,
    print_round,
    print_starved,
    print_table,
    print_throughput_table,
    process_cpu_s,
    report_ratio,
    rotations,
    run_workers,
    sandbox_process,
)
from aiohttp import web

from voipnumber_async import AsyncVoipNumber
from voipnumber_async._wire.requests import base_headers, encode_send_request
from voipnumber_async.sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, DEMO_NUMBER, Sandbox

TARGET_RATIO = 0.9
TARGET_JOURNAL_RATIO = 0.9
TARGET_GROWTH_MIB = 100.0
#: The count the issue asks the memory run to reach.
ISSUE_MEMORY_MESSAGES = 1_000_000
FROM = DEMO_NUMBER
TEXT = "Your order 12345 has shipped and will arrive on Thursday. Thank you for shopping!"
SEND_PATH = "/v1/sms/send"
STATS_PATH = "/bench/stats"
RESET_PATH = "/bench/reset"
#: The sandbox counts and drops what it accepted once it holds this many messages.
TRIM_EVERY = 50_000
#: RSS is sampled after every this many results in the memory run.
SAMPLE_EVERY = 100_000
MIB = 1024 * 1024

#: One encoder, built once, as an application sending thousands a second would.
_encode_json = json.JSONEncoder(ensure_ascii=False).encode


def campaign(count: int) -> Iterator[tuple[str, str, str]]:
    """`count` messages, made one at a time: the same text to a different recipient each."""
    for n in range(count):
        yield FROM, f"+4474{n:08d}", TEXT


# --- the sandbox, in its own process ----------------------------------------------------


class BenchSandbox(Sandbox):
    """The sandbox with bounded memory: what it accepted is counted, then dropped.

    `GET /bench/stats` answers the requests and accepted messages since the last
    `POST /bench/reset`.
    """

    def __init__(self) -> None:
        super().__init__(record=False)
        self.folded_requests = 0
        self.folded_accepted = 0

    def make_app(self) -> web.Application:
        app = super().make_app()
        app.router.add_get(STATS_PATH, self._stats)
        app.router.add_post(RESET_PATH, self._reset)
        return app

    def fold(self) -> None:
        """Count what is held, then forget it (messages, stored answers, counters)."""
        self.folded_requests += self.request_count
        self.folded_accepted += len(self.messages)
        self.reset()

    async def trim_forever(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            if len(self.messages) >= TRIM_EVERY:
                self.fold()

    async def _stats(self, request: web.Request) -> web.Response:
        self.fold()
        return web.json_response(
            {"requests": self.folded_requests, "accepted": self.folded_accepted}
        )

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        self.folded_requests = self.folded_accepted = 0
        return web.json_response({})


async def serve(port: int) -> None:
    sandbox = BenchSandbox()
    await sandbox.start(HOST, port)
    await sandbox.trim_forever()  # until the process is terminated


def serve_command(port: int) -> list[str]:
    """This script with `--serve PORT`: `BenchSandbox` in a process of its own."""
    return [sys.executable, __file__, "--serve", str(port)]


def sandbox_call(base_url: str, path: str) -> dict[str, int]:
    """Ask the sandbox for its counts (GET) or to reset them (POST); blocking."""
    method = "POST" if path == RESET_PATH else "GET"
    request = urllib.request.Request(base_url + path, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def check_accepted(base_url: str, expected: int, who: str) -> None:
    """Fail loudly unless the sandbox saw and accepted exactly `expected` messages.

    Every message carried its own idempotency key: a repeated key is answered with a
    replay, which is not accepted again.
    """
    stats = sandbox_call(base_url, STATS_PATH)
    if stats["requests"] != expected or stats["accepted"] != expected:
        raise BenchmarkError(
            f"{who}: {expected} messages, but the sandbox saw {stats['requests']} requests "
            f"and accepted {stats['accepted']} messages"
        )


def memory_status() -> dict[str, int] | None:
    """`VmRSS` and `VmHWM` (the peak) of this process in bytes, on Linux; else None."""
    try:
        with open("/proc/self/status") as status:
            lines = status.read().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(value.split()[0]) * 1024
    return values if len(values) == 2 else None


# --- the clients ------------------------------------------------------------------------


class Bare:
    """A bare aiohttp worker pool: what an application would write without the SDK."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.url = base_url + SEND_PATH
        self.concurrency = concurrency
        # The same headers the SDK sends (checked against it in main()).
        self.headers = bare_headers(DEMO_ACCOUNT_ID, DEMO_API_TOKEN)
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    @staticmethod
    def encode(from_: str, to: str, body: str) -> bytes:
        """The same bytes the SDK sends (checked against it in main())."""
        return _encode_json({"from": from_, "to": to, "body": body}).encode()

    async def run(self, messages: Iterator[tuple[str, str, str]], count: int) -> None:
        """Send every message, `concurrency` workers pulling from the one iterator."""
        sent = 0
        url, encode, post = self.url, self.encode, self.session.post

        async def worker() -> None:
            nonlocal sent
            for from_, to, body in messages:
                headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
                async with post(url, data=encode(from_, to, body), headers=headers) as response:
                    answer = await response.read()
                    if response.status != 200:
                        raise BenchmarkError(f"bare: HTTP {response.status}: {answer[:200]!r}")
                    json.loads(answer)
                sent += 1

        await run_workers(worker() for _ in range(self.concurrency))
        if sent != count:
            raise BenchmarkError(f"bare: {count} messages, but {sent} were sent")

    async def aclose(self) -> None:
        await self.session.close()


class Sdk:
    """`client.sms.send_many`, used the way its documentation says."""

    def __init__(self, base_url: str, concurrency: int) -> None:
        self.concurrency = concurrency
        self.client = AsyncVoipNumber(
            DEMO_ACCOUNT_ID, DEMO_API_TOKEN, base_url=base_url, max_connections=concurrency
        )

    async def run(
        self, messages: Iterator[tuple[str, str, str]], count: int, journal: Path | None = None
    ) -> None:
        who = "SDK + journal" if journal else "SDK"
        ok, first_failure = 0, None
        bulk = self.client.sms.send_many(messages, concurrency=self.concurrency, journal=journal)
        async with bulk as results:
            async for result in results:
                if result.ok:
                    ok += 1
                elif first_failure is None:
                    first_failure = result
        summary = results.summary
        if ok != count or summary.sent != count or summary.results != count:
            raise BenchmarkError(
                f"{who}: {count} messages, but {ok} results were ok "
                f"(summary: {summary}); first failure: {first_failure}"
            ) from first_failure.error if first_failure else None

    async def aclose(self) -> None:
        await self.client.aclose()


def check_journal(path: Path, expected: int) -> None:
    """Fail loudly unless the journal holds `expected` messages, all sent."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        counts = dict(db.execute("SELECT outcome, count(*) FROM messages GROUP BY outcome"))
    if counts != {"sent": expected}:
        raise BenchmarkError(f"journal: {expected} messages sent, but it holds {counts}")


def remove_journal(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(f"{path}{suffix}")


# --- measuring --------------------------------------------------------------------------


Variant = Callable[[Iterator[tuple[str, str, str]], int, Path], Awaitable[None]]


async def timed_round(
    base_url: str, server_pid: int, variant: Variant, messages: int, journal: Path, who: str
) -> Round:
    sandbox_call(base_url, RESET_PATH)
    remove_journal(journal)
    gc.collect()
    server0 = process_cpu_s(server_pid)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await variant(campaign(messages), messages, journal)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    server1 = process_cpu_s(server_pid)
    check_accepted(base_url, messages, who)
    if who == "SDK + journal":
        check_journal(journal, messages)
    remove_journal(journal)
    return Round(messages, wall1 - wall0, cpu1 - cpu0, delta(server0, server1))


# --- the memory run, in a fresh process ------------------------------------------------


async def memory_child(base_url: str, count: int, concurrency: int) -> dict[str, object]:
    """Send `count` messages from a generator with `send_many`; sample RSS as it goes."""
    client = AsyncVoipNumber(
        DEMO_ACCOUNT_ID, DEMO_API_TOKEN, base_url=base_url, max_connections=concurrency
    )
    gc.collect()
    start = memory_status()
    samples: list[tuple[int, int | None]] = []
    ok = done = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with client, client.sms.send_many(campaign(count), concurrency=concurrency) as results:
        async for result in results:
            ok += result.ok
            done += 1
            if done % SAMPLE_EVERY == 0:
                status = memory_status()
                samples.append((done, status["VmRSS"] if status else None))
    wall1, cpu1 = time.perf_counter(), time.process_time()
    end = memory_status()
    if ok != count or done != count:
        raise BenchmarkError(f"memory run: {count} messages, {done} results, {ok} ok")
    return {
        "messages": count,
        "wall_s": wall1 - wall0,
        "cpu_s": cpu1 - cpu0,
        "start": start,
        "end": end,
        "samples": samples,
    }


def run_memory(args: argparse.Namespace, base_url: str, server_pid: int) -> None:
    count = args.memory_messages
    print(
        f"\nMemory: {count:,} messages from a generator, send_many at concurrency "
        f"{args.concurrency}, no journal, in a fresh process",
        flush=True,
    )
    if count < ISSUE_MEMORY_MESSAGES:
        print(
            f"  (!) the issue asks for {ISSUE_MEMORY_MESSAGES:,} messages; run it with "
            f"--memory-messages {ISSUE_MEMORY_MESSAGES}"
        )
    sandbox_call(base_url, RESET_PATH)
    server0 = process_cpu_s(server_pid)
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            base_url,
            "--memory-messages",
            str(count),
            "--concurrency",
            str(args.concurrency),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        check=False,
        text=True,
    )
    server1 = process_cpu_s(server_pid)
    if child.returncode != 0:
        raise BenchmarkError(f"the memory run failed with status {child.returncode}")
    report = json.loads(child.stdout.strip().splitlines()[-1])
    check_accepted(base_url, count, "memory run")
    result = Round(count, report["wall_s"], report["cpu_s"], delta(server0, server1))
    report_memory(report, result)


# --- reporting --------------------------------------------------------------------------


def mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


def report_throughput(args: argparse.Namespace, results: dict[str, list[Round]]) -> None:
    print(
        f"\nThroughput: {args.messages:,} messages at concurrency {args.concurrency}, "
        f"best of {args.rounds} rounds each"
    )
    names = {
        "bare": "bare aiohttp pool",
        "SDK": "send_many",
        "SDK + journal": "send_many + journal",
    }
    print_throughput_table([(names[who], rounds) for who, rounds in results.items()])
    bare, sdk = results["bare"], results["SDK"]
    print()
    report_ratio("ratio send_many/bare", sdk, bare, TARGET_RATIO)
    journal = results.get("SDK + journal")
    if journal:
        report_ratio("ratio journal/no journal", journal, sdk, TARGET_JOURNAL_RATIO)
    print(
        f"  per-message overhead     {(1 / best(sdk).rate - 1 / best(bare).rate) * 1e6:.1f} µs  "
        "(1/send_many rate - 1/bare rate)"
    )
    print(
        f"  CPU per message, send_many - bare "
        f"{best(sdk).cpu_us_per_message - best(bare).cpu_us_per_message:.1f} µs"
        + (
            f"; journal - no journal "
            f"{best(journal).cpu_us_per_message - best(sdk).cpu_us_per_message:.1f} µs"
            if journal
            else ""
        )
        + "  (this process only; the sandbox runs in another)"
    )
    print_starved([r for rounds in results.values() for r in rounds])


def report_memory(report: dict[str, object], result: Round) -> None:
    start, end = report["start"], report["end"]
    samples: list[tuple[int, int | None]] = report["samples"]  # type: ignore[assignment]
    print(
        f"  {result.rate:,.0f} msg/s, {result.wall_s:.1f} s, "
        f"{result.cpu_us_per_message:.1f} CPU µs/msg  "
        f"(CPU busy, client / sandbox: {result.busy}){' (!)' if result.starved else ''}"
    )
    if not isinstance(start, dict) or not isinstance(end, dict):
        print("  RSS: not available on this system (/proc/self/status)")
        return
    by_count = dict(samples)
    rows = [("RSS after", "RSS", "growth")]
    rows.append(("start", mib(start["VmRSS"]), ""))
    for done, rss in samples:
        if rss is not None:
            rows.append((f"{done:,} results", mib(rss), mib(rss - start["VmRSS"])))
    rows.append(("end", mib(end["VmRSS"]), mib(end["VmRSS"] - start["VmRSS"])))
    rows.append(("peak (VmHWM)", mib(end["VmHWM"]), mib(end["VmHWM"] - start["VmRSS"])))
    print()
    print_table(rows)
    growth = end["VmHWM"] - start["VmRSS"]
    met = "met" if growth < TARGET_GROWTH_MIB * MIB else "NOT met"
    print(
        f"\n  peak RSS growth          {mib(growth)}  (VmHWM - RSS at start); "
        f"target < {TARGET_GROWTH_MIB:.0f} MiB: {met}"
    )
    first = by_count.get(SAMPLE_EVERY)
    if first is not None and result.messages > SAMPLE_EVERY:
        flat = end["VmRSS"] - first
        per = flat / (result.messages - SAMPLE_EVERY) * SAMPLE_EVERY
        print(
            f"  RSS at {SAMPLE_EVERY:,} / at {result.messages:,}: {mib(first)} / "
            f"{mib(end['VmRSS'])}; growth {mib(flat)} ({per / 1024:+.1f} KiB per "
            f"{SAMPLE_EVERY:,} messages): "
            + ("flat" if abs(flat) < 0.05 * growth + 4 * MIB else "GROWS with the count")
        )


# --- main -------------------------------------------------------------------------------


async def run_throughput(args: argparse.Namespace, base_url: str, server_pid: int) -> None:
    bare, sdk = Bare(base_url, args.concurrency), Sdk(base_url, args.concurrency)
    try:
        # The same request bytes on the wire, or the comparison means nothing.
        sample = next(campaign(1))
        if encode_send_request(*sample) != bare.encode(*sample):
            raise BenchmarkError("the bare loop's body differs from the SDK's")
        if base_headers(DEMO_ACCOUNT_ID, DEMO_API_TOKEN) != bare.headers:
            raise BenchmarkError("the bare loop's headers differ from the SDK's")

        async def run_bare(messages: Iterator[tuple[str, str, str]], count: int, _: Path) -> None:
            await bare.run(messages, count)

        async def run_sdk(messages: Iterator[tuple[str, str, str]], count: int, _: Path) -> None:
            await sdk.run(messages, count)

        variants: dict[str, Variant] = {"bare": run_bare, "SDK": run_sdk}
        if not args.no_journal:
            variants["SDK + journal"] = sdk.run
        with tempfile.TemporaryDirectory(prefix="bench-bulk-") as directory:
            journal = Path(directory) / "journal.db"
            for who, variant in variants.items():  # warm up: connections, caches, code paths
                await timed_round(base_url, server_pid, variant, args.warmup, journal, who)
            results: dict[str, list[Round]] = {who: [] for who in variants}
            for n, order in enumerate(rotations(args.rounds, list(variants))):
                for who in order:
                    result = await timed_round(
                        base_url, server_pid, variants[who], args.messages, journal, who
                    )
                    results[who].append(result)
                    print_round(n + 1, who, 13, result)
        report_throughput(args, results)
    finally:
        await bare.aclose()
        await sdk.aclose()


def main(args: argparse.Namespace) -> None:
    cores = place_on_cores(args.cores)
    print(f"{banner('bench_bulk')}, asyncio default loop, {os.cpu_count()} CPUs; {cores}")
    started = time.perf_counter()
    with sandbox_process(serve_command) as (base_url, pid):
        print(
            f"  sandbox: Sandbox(record=False) in process {pid} at {base_url}, nothing logged, "
            f"accepted messages dropped every {TRIM_EVERY:,}",
            flush=True,
        )
        if args.messages:
            print(flush=True)
            asyncio.run(run_throughput(args, base_url, pid))
        if args.memory_messages:
            run_memory(args, base_url, pid)
    print(f"\n  (whole benchmark: {time.perf_counter() - started:.0f} s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages", type=int, default=100_000, help="messages per throughput round (0: skip)"
    )
    parser.add_argument("--concurrency", type=int, default=100, help="workers (and connections)")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds of each client")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed messages of each first")
    parser.add_argument("--no-journal", action="store_true", help="skip the journal variant")
    parser.add_argument(
        "--memory-messages",
        type=int,
        default=ISSUE_MEMORY_MESSAGES,
        help="messages of the memory run (0: skip)",
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--memory-child", metavar="BASE_URL", help=argparse.SUPPRESS)
    add_cores_option(parser)
    args = parser.parse_args(argv)
    if min(args.concurrency, args.rounds, args.warmup) < 1:
        parser.error("--concurrency, --rounds and --warmup must be at least 1")
    if args.messages < 0 or args.memory_messages < 0:
        parser.error("--messages and --memory-messages must be >= 0")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve is not None:
        asyncio.run(serve(arguments.serve))
    elif arguments.memory_child is not None:
        figures = asyncio.run(
            memory_child(arguments.memory_child, arguments.memory_messages, arguments.concurrency)
        )
        print(json.dumps(figures))
    else:
        main(arguments)
