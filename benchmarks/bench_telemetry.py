"""The cost of the OpenTelemetry instrumentation: send throughput with and without it.

The requirement (issue 13): with the OpenTelemetry API installed and no SDK configured,
send throughput is at least 0.98x that without OpenTelemetry at all; with the SDK and a
batch span processor, the figure is printed.

A sandbox runs in a process of its own (`--serve PORT`), on a core of its own by default
(`--cores`). Each configuration runs in a client process of its own (`--client MODE`),
kept running and asked for one round at a time, so that the configurations' rounds
alternate a second or two apart (in rotating order) on a machine whose speed drifts:

- `none`: `opentelemetry` made unimportable (as without the `otel` extra): `_telemetry`
  is its no-op self;
- `api`: the API installed, no SDK configured: the case the 0.98 holds;
- `sdk`: the SDK's tracer provider with a `BatchSpanProcessor` over an exporter that
  drops what it is given, and a meter provider with a periodic reader likewise: every
  span and measurement is made and handed over, nothing is written.

A round of a configuration is `--messages` sends with `client.sms.send` from
`--concurrency` tasks to the sandbox, then `--instant` sends through a transport that
answers at once (no socket, no server: the SDK's code alone, its CPU per send). The
ratio held to target is the median of the rounds' own throughput ratios against the
sandbox. It asserts nothing about time.

    python benchmarks/bench_telemetry.py [--messages 5000] [--concurrency 50] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _harness import (
    BenchmarkError,
    Round,
    add_cores_option,
    banner,
    place_on_cores,
    print_round,
    print_throughput_table,
    report_ratio,
    rotations,
    run_workers,
    sandbox_process,
)

from voipnumber_async import AsyncVoipNumber, _telemetry
from voipnumber_async.sandbox import Sandbox
from voipnumber_async.testing import MockResponse, MockTransport

HOST = "127.0.0.1"
TARGET_API = 0.98
MODES = ("none", "api", "sdk")
FROM = "+447445459147"  # the sandbox's DEMO_NUMBER (not imported: see client())
TO = "+447483866525"
TEXT = "Your order 12345 has shipped and will arrive on Thursday. Thank you for shopping!"


async def serve(port: int) -> None:
    sandbox = Sandbox(record=False)
    await sandbox.start(HOST, port)
    await asyncio.Event().wait()  # until the process is terminated


def install_sdk() -> None:
    """The SDK as an application configures it: batch spans, periodic metrics, no output."""
    # Imported here: the `none` and `api` clients must not have imported the SDK.
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class DropSpans(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(
            self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
        ) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=1_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


async def send_pool(client: AsyncVoipNumber, count: int, concurrency: int) -> None:
    """`count` sends by `concurrency` tasks pulling from one shared counter."""
    counter = iter(range(count))

    async def worker() -> None:
        for _ in counter:
            await client.sms.send(FROM, TO, TEXT)

    await run_workers(worker() for _ in range(min(concurrency, count)))


async def timed(client: AsyncVoipNumber, count: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU seconds of `count` sends."""
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await send_pool(client, count, concurrency)
    return time.perf_counter() - wall0, time.process_time() - cpu0


async def client(mode: str, base_url: str, concurrency: int, warmup: int) -> None:
    """One configuration, kept running: each line on stdin asks for a round.

    `sandbox N` sends N messages to the sandbox; `instant N` sends N through a
    transport that answers at once (no socket, no server: the SDK's code alone, which
    the machine's other load moves far less). Each answer is a JSON line on stdout.
    Kept running between rounds so that the configurations' rounds can alternate
    closely, a second or two apart, on a machine whose speed drifts.
    """
    if mode == "sdk":
        install_sdk()  # after voipnumber_async's import: the globals are looked up per send
    if (mode != "none") != _telemetry.AVAILABLE:
        raise BenchmarkError(f"{mode}: opentelemetry importable is {_telemetry.AVAILABLE}")
    if (_telemetry.start_send("x", None, None) is not None) != (mode == "sdk"):
        raise BenchmarkError(f"{mode}: telemetry recording does not match the mode")
    credentials = ("demo-account", "demo-token")
    instant = MockTransport(MockResponse.queued)
    async with (
        AsyncVoipNumber(*credentials, base_url=base_url, max_connections=concurrency) as remote,
        AsyncVoipNumber(*credentials, transport=instant) as local,
    ):
        clients = {"sandbox": remote, "instant": local}
        for each in clients.values():
            await send_pool(each, warmup, concurrency)
        print("ready", flush=True)
        # Blocking reads: between rounds this process has nothing else to do.
        for line in sys.stdin:
            kind, count = line.split()
            wall_s, cpu_s = await timed(clients[kind], int(count), concurrency)
            print(json.dumps({"wall_s": wall_s, "cpu_s": cpu_s}), flush=True)


#: Runs this script with `import opentelemetry` failing, as where the API is not
#: installed: set before anything imports voipnumber_async (_harness does).
WITHOUT_OPENTELEMETRY = (
    "import runpy, sys; sys.modules['opentelemetry'] = None; sys.path.insert(0, {folder!r}); "
    "sys.argv = {argv!r}; runpy.run_path({script!r}, run_name='__main__')"
)


class Client:
    """One configuration's client process, asked for one round at a time."""

    def __init__(self, mode: str, base_url: str, args: argparse.Namespace) -> None:
        self.mode = mode
        argv = [__file__, "--client", mode, base_url]
        argv += [f"--concurrency={args.concurrency}", f"--warmup={args.warmup}"]
        if mode == "none":
            bootstrap = WITHOUT_OPENTELEMETRY.format(
                folder=str(Path(__file__).parent), argv=argv, script=__file__
            )
            command = [sys.executable, "-c", bootstrap]
        else:
            command = [sys.executable, *argv]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read()  # "ready": warmed up

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise BenchmarkError(f"the {self.mode} client exited ({self.process.wait()})")
        return line

    def round(self, kind: str, count: int) -> Round:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{kind} {count}\n")
        self.process.stdin.flush()
        figures = json.loads(self._read())
        return Round(count, figures["wall_s"], figures["cpu_s"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def main(args: argparse.Namespace) -> None:
    cores = place_on_cores(args.cores)  # the client processes inherit this one's cores
    print(f"{banner('bench_telemetry')}; {cores}")
    print(
        f"  per round and configuration: {args.messages:,} sends to the sandbox at concurrency "
        f"{args.concurrency}, then {args.instant:,} through an instant transport; one client "
        f"process per configuration, warmed up by {args.warmup:,} sends of each kind"
    )
    command = [sys.executable, __file__, "--serve"]
    sandbox: dict[str, list[Round]] = {mode: [] for mode in MODES}
    instant: dict[str, list[Round]] = {mode: [] for mode in MODES}
    with sandbox_process(lambda port: [*command, str(port)]) as (base_url, _):
        clients = {mode: Client(mode, base_url, args) for mode in MODES}
        try:
            for n, order in enumerate(rotations(args.rounds, MODES)):
                for mode in order:
                    sandbox[mode].append(clients[mode].round("sandbox", args.messages))
                    instant[mode].append(clients[mode].round("instant", args.instant))
                    print_round(n + 1, mode, 4, sandbox[mode][-1], busy=False)
        finally:
            for each in clients.values():
                each.close()
    report(sandbox, instant)


def report(sandbox: dict[str, list[Round]], instant: dict[str, list[Round]]) -> None:
    names = {"none": "no opentelemetry", "api": "API, no SDK", "sdk": "SDK, batch spans"}
    print("\nAgainst the sandbox (another process, on its own core)")
    print_throughput_table([(names[mode], sandbox[mode]) for mode in MODES])
    print()
    report_ratio("API no SDK / none", sandbox["api"], sandbox["none"], TARGET_API)
    print_paired("SDK batch / none", sandbox["sdk"], sandbox["none"])
    print("\nThrough a transport that answers at once (the SDK's code alone)")
    print_throughput_table([(names[mode], instant[mode]) for mode in MODES])
    print()
    print_paired("API no SDK / none", instant["api"], instant["none"])
    print_paired("SDK batch / none", instant["sdk"], instant["none"])
    print()
    for label, rounds in (("sandbox", sandbox), ("instant", instant)):
        cpu = {m: statistics.median(r.cpu_us_per_message for r in rounds[m]) for m in MODES}
        print(
            f"  CPU per send, {label} (medians): none {cpu['none']:.1f} µs, "
            f"API {cpu['api']:.1f} µs ({cpu['api'] - cpu['none']:+.1f}), "
            f"SDK {cpu['sdk']:.1f} µs ({cpu['sdk'] - cpu['none']:+.1f})"
        )


def print_paired(label: str, ours: list[Round], theirs: list[Round]) -> None:
    """The median of the rounds' own throughput ratios, printed without a target."""
    paired = [a.rate / b.rate for a, b in zip(ours, theirs, strict=True)]
    print(
        f"  {label:<24} {statistics.median(paired):.3f}  median of the rounds' ratios "
        f"({' '.join(f'{r:.3f}' for r in paired)})"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000, help="sandbox sends per round")
    parser.add_argument("--concurrency", type=int, default=50, help="tasks (and connections)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of each configuration")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed sends first")
    parser.add_argument(
        "--instant", type=int, default=10_000, help="instant-transport sends per round"
    )
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=2, metavar=("MODE", "URL"), help=argparse.SUPPRESS)
    add_cores_option(parser)
    args = parser.parse_args(argv)
    if min(args.messages, args.concurrency, args.rounds, args.warmup, args.instant) < 1:
        parser.error("--messages, --concurrency, --rounds, --warmup, --instant must be >= 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve:
        asyncio.run(serve(arguments.serve))
    elif arguments.client:
        mode, url = arguments.client
        asyncio.run(client(mode, url, arguments.concurrency, arguments.warmup))
    else:
        main(arguments)
