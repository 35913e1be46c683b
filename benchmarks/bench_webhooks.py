"""Webhook receiver throughput: `create_app` against a bare aiohttp handler, both served.

The requirement: the receiver app handles at least 5,000 deliveries/s on this machine
with a no-op handler, measured against a bare aiohttp handler that only parses JSON, as
a ratio (at least 0.7x) printed by the benchmark.

Two servers, each in its own process on 127.0.0.1 (`access_log=None`, one core each):

- receiver: `create_app(noop, secret=SECRET)` with its defaults (the `Host` check, the
  default `MemoryDeliveryStore`, the path `/webhooks/voipnumber`), `noop` a handler
  that does nothing;
- bare: an aiohttp handler on the same path that does `json.loads(await request.read())`
  and answers `{"status": "accepted"}`.

The load generator is this process, on cores of its own (`--cores split`, the
default; the servers on the rest): an aiohttp client with a pool of
`--concurrency` connections and as many workers, posting deliveries with the documented
headers (`WEBHOOK_HEADERS`) to `?secret=SECRET`. Every delivery is the fixture's JSON
with its own `mdr_id` (a redelivery would be deduplicated, and answered without calling
the handler), all built before the clock starts. Every answer must be a 200 whose JSON
says "accepted" (the receiver's must also echo the delivery's `mdr_id`), or the benchmark
raises: a benchmark that silently measures errors is worthless.

Rounds alternate (receiver, bare, receiver, bare, ...) so that drift in the machine hits
both alike; the best round of each is compared, and the median is shown beside it. Each
round also shows how busy the client, the server and every other process on the machine
were (CPU time over wall time, in % of one core): whichever of the first two is near
100% is what limits the rate, and a busy third means the machine was shared. When the
client is the limit, the ratio understates the receiver's cost; the servers' CPU per
delivery says what each spends, whoever is the limit, and their quotient is printed as
the CPU-bound ratio.

`--client raw` swaps the aiohttp client for HTTP/1.1 written by hand over asyncio
streams (the same bytes on the wire, a fraction of the client CPU), for when the aiohttp
client is what limits the figures.

It prints figures and asserts nothing about time.

    python benchmarks/bench_webhooks.py [--deliveries 30000] [--concurrency 64] [--rounds 2]

`--profile-server receiver` runs that server under cProfile and prints its top costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import os
import pstats
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _harness
import aiohttp
from _harness import (
    HOST,
    BenchmarkError,
    add_cores_option,
    banner,
    best,
    delta,
    free_port,
    median_rate,
    place_on_cores,
    print_table,
    process_cpu_s,
    run_workers,
    start_server,
    stop_server,
    wait_for_port,
)
from aiohttp import web
from yarl import URL

from voipnumber_async._wire.inbound import WEBHOOK_HEADERS
from voipnumber_async.webhooks import (
    DEFAULT_WEBHOOK_PATH,
    InboundMessage,
    create_app,
    parse_inbound,
)

TARGET_RATE = 5_000.0
TARGET_RATIO = 0.7
SECRET = "bench-webhook-secret-0123456789"
PATH = DEFAULT_WEBHOOK_PATH
QUERY = f"?secret={SECRET}"
VARIANTS = ("receiver", "bare")
#: The documented delivery: the contract's fixture, else the copy vendored for the tests.
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = (
    ROOT.parent / "shared" / "fixtures" / "inbound-sms.json",
    ROOT / "tests" / "fixtures" / "inbound-sms.json",
)
#: Delivery bodies, each with the `mdr_id` it carries.
Deliveries = list[tuple[bytes, str]]
#: Other processes busier than this (in cores) during a round make its figures suspect.
QUIET_OTHER = 0.15


# --- the servers, each run in a process of its own (`--serve`) ---------------------------


async def noop(message: InboundMessage) -> None:
    return None


async def bare_receive(request: web.Request) -> web.Response:
    json.loads(await request.read())
    return web.json_response({"status": "accepted"})


def server_app(variant: str) -> web.Application:
    if variant == "receiver":
        return create_app(noop, secret=SECRET)
    app = web.Application()
    app.router.add_post(PATH, bare_receive)
    return app


def serve(variant: str, port: int, profile_to: str | None) -> None:
    """Serve `variant` on `port` until SIGINT or SIGTERM; with `profile_to`, under cProfile."""
    app = server_app(variant)
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        web.run_app(app, host=HOST, port=port, access_log=None, print=None)
    finally:
        if profiler is not None and profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)


class Server:
    """One server variant running in a child process (this script with `--serve`)."""

    def __init__(self, variant: str, profile_to: str | None = None) -> None:
        self.variant = variant
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}{PATH}{QUERY}"
        command = [sys.executable, __file__, "--serve", variant, "--port", str(self.port)]
        if profile_to:
            command += ["--profile-to", profile_to]
        self.process = start_server(command)
        self.pid = self.process.pid

    def wait_ready(self) -> None:
        wait_for_port(self.process, self.port, f"the {self.variant} server")

    def cpu_s(self) -> float | None:
        return process_cpu_s(self.pid)

    def stop(self) -> None:
        # SIGINT, which run_app turns into a clean shutdown (and a profile dump).
        stop_server(self.process, signal.SIGINT, grace_s=10)


def machine_busy_s() -> float | None:
    """The CPU time all processes spent, summed over every core, on Linux; else None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(field) for field in stat.readline().split()[1:9]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


@contextlib.contextmanager
def servers(profile: str | None, profile_dir: str) -> Iterator[dict[str, Server]]:
    running: dict[str, Server] = {}
    try:
        for variant in VARIANTS:
            profile_to = (
                os.path.join(profile_dir, f"{variant}.prof") if profile == variant else None
            )
            running[variant] = Server(variant, profile_to)
        for server in running.values():
            server.wait_ready()
        yield running
    finally:
        for server in running.values():
            server.stop()


# --- the deliveries ---------------------------------------------------------------------


def load_fixture() -> dict[str, Any]:
    for path in FIXTURES:
        if path.exists():
            fixture: dict[str, Any] = json.loads(path.read_bytes())
            return fixture
    raise BenchmarkError(f"no inbound fixture at any of {[str(p) for p in FIXTURES]}")


def build_deliveries(fixture: dict[str, Any], count: int) -> Deliveries:
    """`count` delivery bodies, each with its own `mdr_id`, and that id."""
    deliveries = []
    for _ in range(count):
        mdr_id = str(uuid.uuid4())
        deliveries.append((json.dumps({**fixture, "mdr_id": mdr_id}).encode(), mdr_id))
    return deliveries


def check_delivery_parses(body: bytes, mdr_id: str) -> None:
    """What the load sends must pass every check, or the receiver only measures refusals."""
    message = parse_inbound(body, WEBHOOK_HEADERS, url=PATH + QUERY, secret=SECRET)
    if message.mdr_id != mdr_id:
        raise BenchmarkError(f"the delivery parsed to mdr_id {message.mdr_id!r}, not {mdr_id!r}")


# --- measuring --------------------------------------------------------------------------


class Round(_harness.Round):
    """One timed run of `deliveries` posts to one server (its `messages`).

    `cpu_us_per_message` is the load generator's CPU per delivery, `server_us` the
    server's; `busy` adds how busy every other process on the machine was.
    """

    def __init__(
        self,
        deliveries: int,
        wall_s: float,
        cpu_s: float,
        server_cpu_s: float | None,
        machine_s: float | None,
    ) -> None:
        super().__init__(deliveries, wall_s, cpu_s, server_cpu_s)
        #: The CPU time of every process on the machine over the round, where known.
        self.machine_s = machine_s

    @property
    def server_us(self) -> float | None:
        if self.server_cpu_s is None:
            return None
        return self.server_cpu_s / self.messages * 1e6

    @property
    def client_busy(self) -> float:
        return self.cpu_s / self.wall_s

    @property
    def server_busy(self) -> float | None:
        return None if self.server_cpu_s is None else self.server_cpu_s / self.wall_s

    @property
    def other_busy(self) -> float | None:
        """How busy everything else on the machine was, in cores (0.0 when it is quiet)."""
        if self.machine_s is None or self.server_cpu_s is None:
            return None
        return max(0.0, self.machine_s - self.cpu_s - self.server_cpu_s) / self.wall_s

    @property
    def busy(self) -> str:
        """How busy each was, in % of one core: "client / server / other processes"."""
        server = "?" if self.server_busy is None else f"{self.server_busy:.0%}"
        other = "?" if self.other_busy is None else f"{self.other_busy:.0%}"
        return f"{self.client_busy:.0%} / {server} / {other}"


def check_answer(who: str, mdr_id: str, status: int, answer: bytes) -> None:
    """A 200 whose JSON says "accepted" (and, from the receiver, echoes the `mdr_id`)."""
    if status != 200:
        raise BenchmarkError(f"{who}: delivery {mdr_id}: HTTP {status}: {answer[:200]!r}")
    decoded = json.loads(answer)
    if decoded.get("status") != "accepted" or decoded.get("mdr_id", mdr_id) != mdr_id:
        raise BenchmarkError(f"{who}: delivery {mdr_id} answered {answer[:200]!r}")


class Load:
    """A load generator: `concurrency` workers posting over as many kept-alive connections."""

    name = "?"

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency

    async def post_all(self, server: Server, deliveries: Deliveries, who: str) -> None:
        """Post every delivery by `concurrency` workers pulling from one shared iterator."""
        pending = iter(deliveries)
        workers = min(self.concurrency, len(deliveries))
        await run_workers(self.worker(server, n, pending, who) for n in range(workers))

    async def worker(
        self, server: Server, n: int, pending: Iterator[tuple[bytes, str]], who: str
    ) -> None:
        raise NotImplementedError

    async def timed_round(self, server: Server, deliveries: Deliveries, who: str) -> Round:
        gc.collect()
        server0, machine0 = server.cpu_s(), machine_busy_s()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await self.post_all(server, deliveries, who)
        wall1, cpu1 = time.perf_counter(), time.process_time()
        server1, machine1 = server.cpu_s(), machine_busy_s()
        return Round(
            len(deliveries),
            wall1 - wall0,
            cpu1 - cpu0,
            delta(server0, server1),
            delta(machine0, machine1),
        )

    async def aclose(self) -> None:
        return None


class AiohttpLoad(Load):
    """An aiohttp client with a pool of `concurrency` connections: what a service would use."""

    name = "aiohttp client"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency), skip_auto_headers=("User-Agent",)
        )
        self.headers = dict(WEBHOOK_HEADERS)
        # Each URL parsed once, as a service posting to one endpoint would.
        self.urls: dict[int, URL] = {}

    async def worker(
        self, server: Server, n: int, pending: Iterator[tuple[bytes, str]], who: str
    ) -> None:
        target = self.urls.setdefault(server.port, URL(server.url))
        post, headers = self.session.post, self.headers
        for body, mdr_id in pending:
            async with post(target, data=body, headers=headers) as response:
                answer = await response.read()
                status = response.status
            check_answer(who, mdr_id, status, answer)

    async def aclose(self) -> None:
        await self.session.close()


class RawLoad(Load):
    """HTTP/1.1 by hand over asyncio streams: the same bytes for far less client CPU.

    Each worker keeps its own connection to each server. The request is the documented
    headers, `Content-Length` and the body; the answer is read to its `Content-Length`.
    """

    name = "raw HTTP/1.1 client"

    def __init__(self, concurrency: int) -> None:
        super().__init__(concurrency)
        self.connections: dict[tuple[int, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        self.connections = {}
        headers = "".join(f"{name}: {value}\r\n" for name, value in WEBHOOK_HEADERS.items())
        self.head = f"POST {PATH}{QUERY} HTTP/1.1\r\n{headers}Content-Length: ".encode("ascii")

    async def worker(
        self, server: Server, n: int, pending: Iterator[tuple[bytes, str]], who: str
    ) -> None:
        key = (server.port, n)
        if key not in self.connections:
            self.connections[key] = await asyncio.open_connection(HOST, server.port)
        reader, writer = self.connections[key]
        head = self.head
        for body, mdr_id in pending:
            writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            answer_head = await reader.readuntil(b"\r\n\r\n")
            status = int(answer_head[9:12])
            at = answer_head.lower().find(b"\r\ncontent-length:")
            if at < 0:
                raise BenchmarkError(f"{who}: an answer without Content-Length: {answer_head!r}")
            length = int(answer_head[at + 17 : answer_head.index(b"\r\n", at + 2)])
            check_answer(who, mdr_id, status, await reader.readexactly(length))

    async def aclose(self) -> None:
        for _, writer in self.connections.values():
            writer.close()
        for _, writer in self.connections.values():
            with contextlib.suppress(OSError):
                await writer.wait_closed()


CLIENTS: dict[str, type[Load]] = {"aiohttp": AiohttpLoad, "raw": RawLoad}


# --- reporting --------------------------------------------------------------------------


def fmt_us(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def limit_of(round_: Round) -> str:
    """Which side was saturated in a round: the one nearer a full core."""
    server = round_.server_busy
    if server is None:
        return "client" if round_.client_busy >= 0.9 else "unknown"
    if max(server, round_.client_busy) < 0.85:
        other = round_.other_busy
        if other is not None and other > QUIET_OTHER:
            return f"neither: other processes took {other:.0%} of a core"
        return "neither (latency-bound)"
    return "server" if server >= round_.client_busy else "client"


def report(args: argparse.Namespace, results: dict[str, list[Round]]) -> None:
    receiver, bare = best(results["receiver"]), best(results["bare"])
    ratio = receiver.rate / bare.rate
    median_ratio = median_rate(results["receiver"]) / median_rate(results["bare"])
    print(
        f"\nThroughput: {args.deliveries:,} deliveries per round at concurrency "
        f"{args.concurrency} ({CLIENTS[args.client].name}), best of {args.rounds} rounds each"
    )
    rows = [
        (
            "server",
            "best /s",
            "median /s",
            "server CPU µs/dlv",
            "client CPU µs/dlv",
            "busy client/server/other",
            "rounds (/s)",
        )
    ]
    for name, variant, chosen in (
        ("create_app, no-op handler", "receiver", receiver),
        ("bare aiohttp, json.loads", "bare", bare),
    ):
        rows.append(
            (
                name,
                f"{chosen.rate:,.0f}",
                f"{median_rate(results[variant]):,.0f}",
                fmt_us(chosen.server_us),
                f"{chosen.cpu_us_per_message:.1f}",
                chosen.busy,
                " ".join(f"{r.rate:,.0f}" for r in results[variant]),
            )
        )
    print_table(rows)
    rate_met = "met" if receiver.rate >= TARGET_RATE else "NOT met"
    ratio_met = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\n  receiver rate            {receiver.rate:,.0f} deliveries/s "
        f"(median rounds: {median_rate(results['receiver']):,.0f}); "
        f"target >= {TARGET_RATE:,.0f}/s: {rate_met}"
    )
    print(
        f"  ratio receiver/bare      {ratio:.3f}  (median rounds: {median_ratio:.3f}); "
        f"target >= {TARGET_RATIO:.2f}: {ratio_met}"
    )
    print(
        f"  per-delivery overhead    {(1 / receiver.rate - 1 / bare.rate) * 1e6:.1f} µs  "
        "(1/receiver rate - 1/bare rate)"
    )
    if receiver.server_us is not None and bare.server_us is not None:
        print(
            f"  server CPU, recv - bare  {receiver.server_us - bare.server_us:.1f} µs/delivery;  "
            f"CPU-bound ratio {bare.server_us / receiver.server_us:.3f}  "
            "(bare server CPU / receiver server CPU: the ratio with an unlimited client)"
        )
    print(
        f"  limited by               receiver rounds: {limit_of(receiver)}; "
        f"bare rounds: {limit_of(bare)}  (the side nearer 100% of a core)"
    )
    others = [r.other_busy for rounds in results.values() for r in rounds]
    busiest = max((o for o in others if o is not None), default=None)
    if busiest is not None and busiest > QUIET_OTHER:
        print(
            f"\n  WARNING: other processes on this machine used up to {busiest:.0%} of a core "
            "during the rounds: the rates understate this machine; the CPU µs per delivery "
            "(and the CPU-bound ratio) are the steadier figures. Run it on a quiet machine."
        )


def report_profile(path: str, top: int) -> None:
    print(f"\nServer profile (cProfile; its overhead slows every figure above): top {top}")
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("voipnumber_async", top)


# --- main -------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, running: dict[str, Server]) -> dict[str, list[Round]]:
    fixture = load_fixture()
    per_variant = args.warmup + args.rounds * args.deliveries
    deliveries = build_deliveries(fixture, per_variant)
    check_delivery_parses(*deliveries[0])
    warmup = deliveries[: args.warmup]
    rounds = [
        deliveries[args.warmup + n * args.deliveries : args.warmup + (n + 1) * args.deliveries]
        for n in range(args.rounds)
    ]
    load = CLIENTS[args.client](args.concurrency)
    try:
        for variant in VARIANTS:  # warm up: connections, caches, code paths
            await load.timed_round(running[variant], warmup, variant)
        # The load's connections to the server not being measured are idle, not closed.
        results: dict[str, list[Round]] = {variant: [] for variant in VARIANTS}
        for n in range(args.rounds):
            for variant in VARIANTS:
                # The bare server may see the same bodies as the receiver: it keeps no state.
                result = await load.timed_round(running[variant], rounds[n], variant)
                results[variant].append(result)
                print(
                    f"  round {n + 1} {variant:<8} {result.rate:>8,.0f} deliveries/s  "
                    f"server {fmt_us(result.server_us):>5} / "
                    f"client {result.cpu_us_per_message:5.1f} CPU µs/delivery  "
                    f"busy {result.busy}  ({result.wall_s:.2f} s)",
                    flush=True,
                )
    finally:
        await load.aclose()
    return results


def main(args: argparse.Namespace) -> None:
    cores = place_on_cores(args.cores)
    print(
        f"{banner('bench_webhooks')}, {os.cpu_count()} CPUs, asyncio default loop; "
        f"each server in its own process, the load generator ({CLIENTS[args.client].name}) "
        f"in this one; {cores}"
    )
    with tempfile.TemporaryDirectory() as profile_dir:
        with servers(args.profile_server, profile_dir) as running:
            results = asyncio.run(measure(args, running))
        report(args, results)
        if args.profile_server:
            report_profile(os.path.join(profile_dir, f"{args.profile_server}.prof"), args.top)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=30_000, help="posts per round")
    parser.add_argument("--concurrency", type=int, default=64, help="workers (and connections)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of each server")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed posts to each first")
    parser.add_argument(
        "--client",
        choices=tuple(CLIENTS),
        default="aiohttp",
        help="the load generator: an aiohttp client, or raw HTTP/1.1 over asyncio streams "
        "(far cheaper, for when the aiohttp client is what limits the figures)",
    )
    parser.add_argument(
        "--profile-server",
        choices=VARIANTS,
        help="run that server under cProfile and print its top costs (slows it)",
    )
    parser.add_argument("--top", type=int, default=25, help="rows of the profile to print")
    # Internal: how this script runs itself as a server.
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    add_cores_option(parser)
    args = parser.parse_args(argv)
    if args.serve and not args.port:
        parser.error("--serve needs --port")
    if min(args.deliveries, args.concurrency, args.rounds, args.warmup) < 1:
        parser.error("--deliveries, --concurrency, --rounds and --warmup must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.profile_to)
    else:
        main(arguments)
