"""The cost of the OpenTelemetry instrumentation: send throughput with and without it.

The requirement (issue 13): with the OpenTelemetry API installed and no SDK configured,
send throughput is at least 0.98x that without OpenTelemetry at all; with the SDK and a
batch span processor, the figure is printed.

A sandbox runs in a process of its own (`--serve PORT`), on cores of its own by default
(`--cores`). Each round runs one client process per configuration (`--client MODE`),
in rotating order, each sending `--messages` messages with `client.sms.send` from
`--concurrency` tasks after a warm-up, and printing its rate and its CPU per send:

- `none`: `opentelemetry` made unimportable (as without the `otel` extra): `_telemetry`
  is its no-op self;
- `api`: the API installed, no SDK configured: the case the 0.98 holds;
- `sdk`: the SDK's tracer provider with a `BatchSpanProcessor` over an exporter that
  drops what it is given, and a meter provider with a periodic reader likewise: every
  span and measurement is made and handed over, nothing is written.

The ratio held to target is the median of each round's own ratio (processes run back
to back, on the machine as it was then). It asserts nothing about time.

    python benchmarks/bench_telemetry.py [--messages 10000] [--concurrency 50] [--rounds 5]
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


async def instant_cpu_us(sends: int, concurrency: int) -> float:
    """CPU µs per send through a transport that answers at once: the SDK's code alone.

    No socket and no server, so the machine's other load moves this figure far less
    than the throughput: it is what the instrumentation adds, undiluted.
    """
    transport = MockTransport(MockResponse.queued)
    async with AsyncVoipNumber("demo-account", "demo-token", transport=transport) as sdk:
        await send_pool(sdk, min(sends, 1_000), concurrency)  # warm-up
        gc.collect()
        cpu0 = time.process_time()
        await send_pool(sdk, sends, concurrency)
        return (time.process_time() - cpu0) / sends * 1e6


async def client(
    mode: str, base_url: str, messages: int, concurrency: int, warmup: int, instant: int
) -> None:
    """One configuration's round: print its figures as JSON on stdout."""
    if mode == "sdk":
        install_sdk()  # after voipnumber_async's import: the globals are looked up per send
    if (mode != "none") != _telemetry.AVAILABLE:
        raise BenchmarkError(f"{mode}: opentelemetry importable is {_telemetry.AVAILABLE}")
    if (_telemetry.start_send("x", None, None) is not None) != (mode == "sdk"):
        raise BenchmarkError(f"{mode}: telemetry recording does not match the mode")
    async with AsyncVoipNumber(
        "demo-account", "demo-token", base_url=base_url, max_connections=concurrency
    ) as sdk:
        await send_pool(sdk, warmup, concurrency)
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await send_pool(sdk, messages, concurrency)
        wall1, cpu1 = time.perf_counter(), time.process_time()
    instant_us = await instant_cpu_us(instant, concurrency)
    print(json.dumps({"wall_s": wall1 - wall0, "cpu_s": cpu1 - cpu0, "instant_us": instant_us}))


#: Runs this script with `import opentelemetry` failing, as where the API is not
#: installed: set before anything imports voipnumber_async (_harness does).
WITHOUT_OPENTELEMETRY = (
    "import runpy, sys; sys.modules['opentelemetry'] = None; sys.path.insert(0, {folder!r}); "
    "sys.argv = {argv!r}; runpy.run_path({script!r}, run_name='__main__')"
)


class TelemetryRound(Round):
    """A round against the sandbox, and the CPU per send through an instant transport."""

    def __init__(self, messages: int, wall_s: float, cpu_s: float, instant_us: float) -> None:
        super().__init__(messages, wall_s, cpu_s)
        self.instant_us = instant_us


def one_round(mode: str, base_url: str, args: argparse.Namespace) -> TelemetryRound:
    argv = [__file__, "--client", mode, base_url, f"--messages={args.messages}"]
    argv += [f"--concurrency={args.concurrency}", f"--warmup={args.warmup}"]
    argv += [f"--instant={args.instant}"]
    if mode == "none":
        bootstrap = WITHOUT_OPENTELEMETRY.format(
            folder=str(Path(__file__).parent), argv=argv, script=__file__
        )
        command = [sys.executable, "-c", bootstrap]
    else:
        command = [sys.executable, *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"the {mode} client failed:\n{result.stderr}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    return TelemetryRound(args.messages, figures["wall_s"], figures["cpu_s"], figures["instant_us"])


def main(args: argparse.Namespace) -> None:
    cores = place_on_cores(args.cores)  # the client processes inherit this one's cores
    print(f"{banner('bench_telemetry')}; {cores}")
    print(
        f"  {args.messages:,} sends per round at concurrency {args.concurrency}, each "
        f"configuration in a fresh process after {args.warmup:,} warm-up sends"
    )
    command = [sys.executable, __file__, "--serve"]
    results: dict[str, list[TelemetryRound]] = {mode: [] for mode in MODES}
    with sandbox_process(lambda port: [*command, str(port)]) as (base_url, _):
        for n, order in enumerate(rotations(args.rounds, MODES)):
            for mode in order:
                results[mode].append(one_round(mode, base_url, args))
                print_round(n + 1, mode, 4, results[mode][-1], busy=False)
                instant = results[mode][-1].instant_us
                print(
                    f"          {mode:<4} through an instant transport: {instant:.1f} CPU µs/send"
                )
    print()
    names = {"none": "no opentelemetry", "api": "API, no SDK", "sdk": "SDK, batch spans"}
    print_throughput_table([(names[mode], results[mode]) for mode in MODES])
    print()
    report_ratio("API no SDK / none", results["api"], results["none"], TARGET_API)
    paired = [a.rate / b.rate for a, b in zip(results["sdk"], results["none"], strict=True)]
    print(
        f"  {'SDK batch / none':<24} {statistics.median(paired):.3f}  median of the rounds' "
        f"ratios ({' '.join(f'{r:.3f}' for r in paired)}); printed, no target"
    )
    for label, attribute in (
        ("client CPU per send, against the sandbox", "cpu_us_per_message"),
        ("CPU per send, instant transport (the SDK's code alone)", "instant_us"),
    ):
        cpu = {
            mode: statistics.median(getattr(r, attribute) for r in results[mode]) for mode in MODES
        }
        print(
            f"  {label} (medians): none {cpu['none']:.1f} µs, API {cpu['api']:.1f} µs "
            f"({cpu['api'] - cpu['none']:+.1f}), SDK {cpu['sdk']:.1f} µs "
            f"({cpu['sdk'] - cpu['none']:+.1f})"
        )
    cpu_ratio = [
        b.cpu_us_per_message / a.cpu_us_per_message
        for a, b in zip(results["api"], results["none"], strict=True)
    ]
    print(
        f"  {'API no SDK / none, CPU':<24} {statistics.median(cpu_ratio):.3f}  median of the "
        "rounds' ratios of client CPU per send (none / API): the client-bound throughput ratio"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="sends per round")
    parser.add_argument("--concurrency", type=int, default=50, help="tasks (and connections)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each configuration")
    parser.add_argument("--warmup", type=int, default=1_000, help="untimed sends first")
    parser.add_argument(
        "--instant", type=int, default=20_000, help="sends through an instant transport"
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
        asyncio.run(
            client(
                mode, url, arguments.messages, arguments.concurrency, arguments.warmup,
                arguments.instant,
            )
        )  # fmt: skip
    else:
        main(arguments)
