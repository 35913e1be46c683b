"""The sync facade against the async client, sending to a sandbox in another process.

The requirement: sequential sends to the sandbox, the sync facade's per-call overhead
over the async client awaited directly, both measured in the same run, is at most
150 µs per call at the median; 32 threads sending through one sync client reach at
least 0.8x the throughput of the async client at concurrency 32.

The sandbox (`voipnumber sandbox`) runs in a separate process, so that this process's
CPU and GIL are spent on the clients alone, and by default on cores of its own
(`--cores split`; `--cores shared` lets the 33 threads and the sandbox mix, which on a
small machine measures their contention rather than the client). The async client runs
on an event loop in the main thread; the sync client (`VoipNumber`) runs the same async
client on the portal's loop in its daemon thread, and is called from the main thread
(sequential) or from 32 threads sharing one client (throughput).

- Sequential: one send at a time, each timed with `perf_counter`, in blocks that
  alternate between the clients (async, sync, sync, async, ...) so that drift in the
  machine hits both alike; the median, p10 and p90 are over all the samples of each.
- Throughput: `--messages` sends per round by `--concurrency` coroutines (async) or
  threads (sync) pulling from one shared counter; rounds alternate between the clients;
  the ratio held to target is the median of each pair of rounds' own ratio (run back
  to back), with best against best beside it. Each round
  shows how busy the two processes were: both are CPU-bound, so a round in which they
  got well under two cores measured a busy machine, not the clients, and is marked (!).

Every send must succeed and every message must get its own id, or the benchmark raises:
a benchmark that silently measures errors is worthless. It prints figures and asserts
nothing about time.

    python benchmarks/bench_sync.py [--sequential 3000] [--messages 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import threading
import time
from collections.abc import Callable

from _harness import (
    HOST,
    BenchmarkError,
    Round,
    add_cores_option,
    banner,
    best,
    delta,
    place_on_cores,
    print_latency_table,
    print_round,
    print_starved,
    print_throughput_table,
    process_cpu_s,
    report_ratio,
    rotations,
    sandbox_process,
)

from voipnumber_async import AsyncVoipNumber
from voipnumber_async._config import DEFAULT_MAX_CONNECTIONS
from voipnumber_sync import VoipNumber

TARGET_OVERHEAD_US = 150.0
TARGET_RATIO = 0.8
ACCOUNT_ID = "demo-account"
API_TOKEN = "demo-token"
FROM = "+447445459147"
TO = "+447483866525"
TEXT = "Your order 12345 has shipped and will arrive on Thursday. Thank you for shopping!"
#: The two clients, in the order of the first block and round.
SIDES = ("async", "sync")


def sandbox_command(port: int) -> list[str]:
    """`voipnumber sandbox` on `port`: the sandbox as a user would run it."""
    return [
        sys.executable,
        "-m",
        "voipnumber_async._cli",
        "sandbox",
        "--host",
        HOST,
        "--port",
        str(port),
    ]


# --- counting successes -----------------------------------------------------------------


class Tally:
    """The ids of the messages sent, and the errors raised, by one run of sends."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.errors = 0
        self.first_error: BaseException | None = None

    def failed(self, error: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = error

    def check(self, expected: int, who: str) -> None:
        """Fail loudly unless exactly `expected` sends succeeded, each with its own id."""
        distinct = len(set(self.ids))
        if self.errors or len(self.ids) != expected or distinct != expected:
            raise BenchmarkError(
                f"{who}: {expected} sends, but {len(self.ids)} succeeded "
                f"({distinct} distinct message ids) and {self.errors} raised"
            ) from self.first_error


# --- measuring --------------------------------------------------------------------------


class AsyncSide:
    """The async client, awaited directly on an event loop in the main thread.

    One loop for the whole run (not an `asyncio.run` per block), so that the client's
    session and its pooled connections live as long as the sync client's do.
    """

    def __init__(self, base_url: str, max_connections: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = AsyncVoipNumber(
            ACCOUNT_ID, API_TOKEN, base_url=base_url, max_connections=max_connections
        )

    def sequential_us(self, sends: int) -> list[float]:
        return self.loop.run_until_complete(self._sequential_us(sends))

    async def _sequential_us(self, sends: int) -> list[float]:
        tally, times = Tally(), []
        send, clock = self.client.sms.send, time.perf_counter
        try:
            for _ in range(sends):
                start = clock()
                message = await send(FROM, TO, TEXT)
                times.append((clock() - start) * 1e6)
                tally.ids.append(message.id)
        except Exception as error:  # stop at the first error; check() raises it
            tally.failed(error)
        tally.check(sends, "async sequential")
        return times

    def pool_round(self, messages: int, concurrency: int) -> Round:
        return self.loop.run_until_complete(self._pool_round(messages, concurrency))

    async def _pool_round(self, messages: int, concurrency: int) -> Round:
        """`messages` sends by `concurrency` coroutines pulling from one shared counter."""
        tally, counter = Tally(), iter(range(messages))
        send = self.client.sms.send

        async def worker() -> None:
            try:
                for _ in counter:
                    message = await send(FROM, TO, TEXT)
                    tally.ids.append(message.id)
            except Exception as error:  # this worker stops; check() raises it
                tally.failed(error)

        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, messages))))
        wall1, cpu1 = time.perf_counter(), time.process_time()
        tally.check(messages, f"async, concurrency {concurrency}")
        return Round(messages, wall1 - wall0, cpu1 - cpu0)

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self.client.aclose())
        finally:
            self.loop.close()


class SyncSide:
    """The sync client, called from the main thread or from a pool of threads."""

    def __init__(self, base_url: str, max_connections: int) -> None:
        self.client = VoipNumber(
            ACCOUNT_ID, API_TOKEN, base_url=base_url, max_connections=max_connections
        )

    def sequential_us(self, sends: int) -> list[float]:
        tally, times = Tally(), []
        send, clock = self.client.sms.send, time.perf_counter
        try:
            for _ in range(sends):
                start = clock()
                message = send(FROM, TO, TEXT)
                times.append((clock() - start) * 1e6)
                tally.ids.append(message.id)
        except Exception as error:  # stop at the first error; check() raises it
            tally.failed(error)
        tally.check(sends, "sync sequential")
        return times

    def pool_round(self, messages: int, threads: int) -> Round:
        """`messages` sends by `threads` threads pulling from one shared counter."""
        tally, counter = Tally(), iter(range(messages))
        counter_lock, tally_lock = threading.Lock(), threading.Lock()
        send, go = self.client.sms.send, threading.Event()

        def take() -> bool:
            with counter_lock:  # a range iterator is not thread-safe without the GIL
                return next(counter, None) is not None

        def worker() -> None:
            go.wait()
            try:
                while take():
                    message = send(FROM, TO, TEXT)
                    tally.ids.append(message.id)  # list.append is atomic
            except Exception as error:  # this thread stops; check() raises it
                with tally_lock:
                    tally.failed(error)

        pool = [threading.Thread(target=worker) for _ in range(min(threads, messages))]
        for thread in pool:
            thread.start()
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        go.set()
        for thread in pool:
            thread.join()
        wall1, cpu1 = time.perf_counter(), time.process_time()
        tally.check(messages, f"sync, {threads} threads")
        return Round(messages, wall1 - wall0, cpu1 - cpu0)

    def close(self) -> None:
        self.client.close()


# --- reporting --------------------------------------------------------------------------


def report_sequential(
    args: argparse.Namespace,
    async_us: list[float],
    sync_us: list[float],
    block_overheads: list[float],
) -> None:
    print(
        f"\nSequential: {args.sequential:,} sends of each client one at a time "
        f"(after {args.warmup:,} warm-up), {args.blocks} blocks of each, alternating; per send (µs)"
    )
    print_latency_table([("async, awaited", async_us), ("sync facade", sync_us)])
    overhead = statistics.median(sync_us) - statistics.median(async_us)
    met = "met" if overhead <= TARGET_OVERHEAD_US else "NOT met"
    print(
        f"\n  sync overhead per call   {overhead:.1f} µs  (median sync - median async); "
        f"target <= {TARGET_OVERHEAD_US:.0f} µs: {met}"
    )
    print(
        "  the same, per pair of adjacent blocks: "
        + " ".join(f"{overhead:.0f}" for overhead in block_overheads)
        + " µs  (the spread shows the noise of this run)"
    )


def report_throughput(
    args: argparse.Namespace, async_rounds: list[Round], sync_rounds: list[Round]
) -> None:
    async_best, sync_best = best(async_rounds), best(sync_rounds)
    print(
        f"\nThroughput: {args.messages:,} messages, async at concurrency {args.concurrency} vs "
        f"{args.concurrency} threads through one sync client, best of {args.rounds} rounds each"
    )
    print_throughput_table(
        [
            (f"async, {args.concurrency} coroutines", async_rounds),
            (f"sync, {args.concurrency} threads", sync_rounds),
        ]
    )
    print()
    report_ratio("ratio sync/async", sync_rounds, async_rounds, TARGET_RATIO)
    print_starved(async_rounds + sync_rounds)
    print(
        f"  CPU per send, sync - async "
        f"{sync_best.cpu_us_per_message - async_best.cpu_us_per_message:.1f} µs  "
        "(this process only; the sandbox runs in another)"
    )


# --- main -------------------------------------------------------------------------------


def run_sequential(args: argparse.Namespace, async_side: AsyncSide, sync_side: SyncSide) -> None:
    sides: dict[str, Callable[[int], list[float]]] = {
        "async": async_side.sequential_us,
        "sync": sync_side.sequential_us,
    }
    for sequential_us in sides.values():  # warm up: the connection, caches, code paths
        sequential_us(args.warmup)
    times: dict[str, list[float]] = {"async": [], "sync": []}
    block_overheads = []  # sync - async, block medians, per adjacent pair of blocks
    per_block, extra = divmod(args.sequential, args.blocks)
    for n, order in enumerate(rotations(args.blocks, SIDES)):
        block: dict[str, list[float]] = {}
        for who in order:
            gc.collect()
            block[who] = sides[who](per_block + (1 if n < extra else 0))
            times[who] += block[who]
        block_overheads.append(statistics.median(block["sync"]) - statistics.median(block["async"]))
    report_sequential(args, times["async"], times["sync"], block_overheads)


def run_throughput(
    args: argparse.Namespace, async_side: AsyncSide, sync_side: SyncSide, server_pid: int
) -> None:
    sides: dict[str, Callable[[int, int], Round]] = {
        "async": async_side.pool_round,
        "sync": sync_side.pool_round,
    }
    for pool_round in sides.values():  # warm up: open the whole pool of connections
        pool_round(args.warmup_messages, args.concurrency)
    results: dict[str, list[Round]] = {"async": [], "sync": []}
    for n, order in enumerate(rotations(args.rounds, SIDES)):
        for who in order:
            server0 = process_cpu_s(server_pid)
            result = sides[who](args.messages, args.concurrency)
            result.server_cpu_s = delta(server0, process_cpu_s(server_pid))
            results[who].append(result)
            print_round(n + 1, who, 5, result)
    report_throughput(args, results["async"], results["sync"])


def main(args: argparse.Namespace) -> None:
    cores = place_on_cores(args.cores)
    print(
        f"{banner('bench_sync')}, asyncio default loop, "
        f"switch interval {sys.getswitchinterval() * 1e3:g} ms; {cores}"
    )
    with sandbox_process(sandbox_command) as (base_url, pid):
        print(f"  sandbox: `voipnumber sandbox` in process {pid} at {base_url}", flush=True)
        if args.sequential:
            async_side = AsyncSide(base_url, DEFAULT_MAX_CONNECTIONS)
            sync_side = SyncSide(base_url, DEFAULT_MAX_CONNECTIONS)
            try:
                run_sequential(args, async_side, sync_side)
            finally:
                sync_side.close()
                async_side.close()
        if args.messages:
            print(flush=True)
            async_side = AsyncSide(base_url, args.concurrency)
            sync_side = SyncSide(base_url, args.concurrency)
            try:
                run_throughput(args, async_side, sync_side, pid)
            finally:
                sync_side.close()
                async_side.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sequential", type=int, default=3_000, help="timed sequential sends of each (0: skip)"
    )
    parser.add_argument("--warmup", type=int, default=300, help="untimed sequential sends first")
    parser.add_argument(
        "--blocks", type=int, default=4, help="sequential blocks of each client, alternating"
    )
    parser.add_argument(
        "--messages", type=int, default=20_000, help="sends per throughput round (0: skip)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="coroutines / threads (and connections)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of each client")
    parser.add_argument(
        "--warmup-messages", type=int, default=1_000, help="untimed throughput sends of each first"
    )
    add_cores_option(parser)
    args = parser.parse_args(argv)
    if min(args.warmup, args.blocks, args.concurrency, args.rounds, args.warmup_messages) < 1:
        parser.error("--warmup, --blocks, --concurrency, --rounds, --warmup-messages must be >= 1")
    if args.messages < 0 or not (args.sequential == 0 or args.sequential >= 10 * args.blocks):
        parser.error("--messages must be >= 0; --sequential 0 or at least 10 x --blocks")
    return args


if __name__ == "__main__":
    main(parse_args())
