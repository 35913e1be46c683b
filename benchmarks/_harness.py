"""What the benchmark scripts share: timed rounds, server processes, figures and tables.

The scripts (`bench_*.py`) are run as `python benchmarks/bench_X.py`, which puts this
folder on `sys.path`, so they import this module as `_harness`. Its name does not match
`bench_*.py`, so the noxfile's `bench` session does not run it as a benchmark.

Only what the scripts do alike lives here; what one script measures its own way (how it
counts successes, what its servers are, its targets) stays in that script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import aiohttp

import voipnumber_async

#: Where every server a benchmark starts listens: loopback, so no network is measured.
HOST = "127.0.0.1"
#: Client and server CPU together, in cores, below which a round is marked as starved.
STARVED_CORES = 1.5
#: How long a server process may take to accept connections.
STARTUP_TIMEOUT_S = 30.0


class BenchmarkError(RuntimeError):
    """The benchmark did not measure what it claims to (an error, a lost message, ...)."""


def banner(script: str) -> str:
    """The start of a script's first line: its name and the versions it measures."""
    return (
        f"{script}: voipnumber {voipnumber_async.__version__}, aiohttp {aiohttp.__version__}, "
        f"Python {platform.python_version()} ({sys.platform})"
    )


def bare_headers(account_id: str, api_token: str) -> dict[str, str]:
    """The headers of a send, written out by hand as an application without the SDK would."""
    # Spelt out rather than taken from the SDK, so that the scripts' check against
    # `base_headers` proves the bare loop sends what the SDK does.
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"voipnumber-python/{voipnumber_async.__version__}",
        "X-Account-Id": account_id,
        "Authorization": f"Bearer {api_token}",
    }


# --- server processes -------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on `HOST` that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_cpu_s(pid: int) -> float | None:
    """The CPU time (user + system) of process `pid`, on Linux; else None."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name may hold spaces and parentheses: count fields after its ")".
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def delta(before: float | None, after: float | None) -> float | None:
    """`after - before`, or None where either reading is unknown (the OS did not tell)."""
    return None if before is None or after is None else after - before


# --- cores ------------------------------------------------------------------------------

#: The cores of the servers this process starts, when `place_on_cores` split them off.
_server_cores: set[int] | None = None


def add_cores_option(parser: argparse.ArgumentParser) -> None:
    """`--cores split|shared`: whether clients and servers get cores of their own."""
    parser.add_argument(
        "--cores",
        choices=("split", "shared"),
        default="split",
        help="split (default): this process on the first half of the cores, the servers "
        "on the rest, as if they ran on another machine; shared: all on all",
    )


def place_on_cores(choice: str) -> str:
    """Pin this process (call before it starts a thread) and its servers; say how.

    A server standing in for the service must not compete with the client for a core:
    on a real deployment it runs on another machine. Left to the scheduler on a small
    machine, a client with many threads runs some of them on the server's core,
    preempting it at every wake-up, and the figures measure that contention rather
    than the client. Each side gets half of the cores instead. (Linux only; elsewhere,
    or with one core, everything shares.)
    """
    global _server_cores  # noqa: PLW0603 - one setting for the whole run
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if choice == "shared" or len(available) < 2:
        _server_cores = None
        return f"cores: shared ({len(available) or os.cpu_count()} for all)"
    half = len(available) // 2
    client, server = set(available[:half]), set(available[half:])
    os.sched_setaffinity(0, client)  # threads started from now on inherit it
    _server_cores = server
    return f"cores: this process on {_cores(client)}, its servers on {_cores(server)}"


def _cores(cores: set[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))


def place_on_server_cores(pid: int) -> None:
    """Move process `pid`, a server started some other way, to the servers' cores."""
    if _server_cores is not None:
        os.sched_setaffinity(pid, _server_cores)


def start_server(command: list[str]) -> subprocess.Popen[bytes]:
    """Start `command`, a server, as a child process with no pipes to it.

    On the servers' cores, when `place_on_cores` split them off.
    """
    # DEVNULL rather than pipes that nobody reads during a run: a server that logs
    # every request (`voipnumber sandbox` does) would block once a pipe filled.
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if _server_cores is not None:
        # Before it has started serving, or a thread: what it starts later inherits it.
        os.sched_setaffinity(process.pid, _server_cores)
    return process


def wait_for_port(
    process: subprocess.Popen[bytes], port: int, name: str, *, process_name: str | None = None
) -> None:
    """Wait until `process` accepts connections on `port` of `HOST`.

    Raises `BenchmarkError` if it exits first, or does not within `STARTUP_TIMEOUT_S`;
    the messages call it `name` (`process_name`, where given, when it has exited).
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise BenchmarkError(
                f"{process_name or name} exited with status {process.returncode} "
                f"before accepting connections on port {port}"
            )
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{name} did not accept connections within {STARTUP_TIMEOUT_S} s"
                ) from None
            time.sleep(0.05)
        else:
            return


def stop_server(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace_s: float = 5.0
) -> None:
    """Stop `process` with `sig`; kill it if it has not exited within `grace_s`."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def sandbox_process(command: Callable[[int], list[str]]) -> Iterator[tuple[str, int]]:
    """Run `command(port)`, a sandbox serving on `port` of `HOST`, in a child process.

    Yields the sandbox's base URL and its pid (to read its CPU time); stops it on exit.
    """
    port = free_port()
    process = start_server(command(port))
    try:
        wait_for_port(process, port, "the sandbox", process_name="the sandbox process")
        yield f"http://{HOST}:{port}", process.pid
    finally:
        stop_server(process)


# --- measuring --------------------------------------------------------------------------


class Round:
    """One timed run of `messages` sends: its wall time, and the CPU time it took."""

    def __init__(
        self, messages: int, wall_s: float, cpu_s: float, server_cpu_s: float | None = None
    ) -> None:
        self.messages = messages
        self.wall_s = wall_s
        #: This process's CPU time over the round.
        self.cpu_s = cpu_s
        #: The server process's CPU time over the round, where it runs in another
        #: process and the OS tells it.
        self.server_cpu_s = server_cpu_s

    @property
    def rate(self) -> float:
        """Messages per second of wall time."""
        return self.messages / self.wall_s

    @property
    def cpu_us_per_message(self) -> float:
        """This process's CPU time per message, in µs."""
        return self.cpu_s / self.messages * 1e6

    @property
    def busy(self) -> str:
        """How busy this process and the server's were: "client% / server%" of a core."""
        server = "?" if self.server_cpu_s is None else f"{self.server_cpu_s / self.wall_s:.0%}"
        return f"{self.cpu_s / self.wall_s:.0%} / {server}"

    @property
    def starved(self) -> bool:
        """Whether the two processes together got less than `STARVED_CORES` of CPU.

        Both are CPU-bound, so on a machine with two idle cores they get nearly two;
        much less means that something else had the CPU (a noisy VM host, say), and
        the round measures that rather than the clients.
        """
        if self.server_cpu_s is None:
            return False
        return (self.cpu_s + self.server_cpu_s) / self.wall_s < STARVED_CORES


RoundT = TypeVar("RoundT", bound=Round)


async def run_workers(workers: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run `workers` concurrently until all have finished; the first error is raised."""
    tasks = [asyncio.ensure_future(worker) for worker in workers]
    try:
        await asyncio.gather(*tasks)
    finally:
        # gather() leaves the others running when one raises: they would go on
        # sending while the caller closes their session.
        for task in tasks:
            task.cancel()


def rotations(rounds: int, names: Sequence[str]) -> Iterator[list[str]]:
    """a b c, c a b, b c a, ...: each client runs in every position, drift hits all alike.

    With two names: a b, b a, a b, ... .
    """
    for n in range(rounds):
        shift = n % len(names)
        yield [*names[len(names) - shift :], *names[: len(names) - shift]]


# --- reporting --------------------------------------------------------------------------


def best(rounds: Sequence[RoundT]) -> RoundT:
    """The fastest of `rounds`: the one least disturbed by the rest of the machine."""
    return max(rounds, key=lambda r: r.rate)


def median_rate(rounds: Iterable[Round]) -> float:
    """The median of the rounds' rates."""
    return statistics.median(r.rate for r in rounds)


def print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Print `rows` as a table: the first row a header, the first column left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        first, *rest = zip(row, widths, strict=True)
        cells = [first[0].ljust(first[1])] + [cell.rjust(width) for cell, width in rest]
        print("  " + "  ".join(cells))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def print_round(number: int, who: str, width: int, result: Round, *, busy: bool = True) -> None:
    """Print a timed round's figures as soon as it ends (a long run shows its progress).

    With `busy`, also how busy client and server were, and (!) if the round was starved.
    """
    figures = (
        f"  round {number} {who:<{width}} {result.rate:>8,.0f} msg/s  "
        f"{result.cpu_us_per_message:6.1f} CPU µs/msg  ({result.wall_s:.2f} s"
    )
    if busy:
        figures += f"; CPU busy, client / sandbox: {result.busy}){' (!)' if result.starved else ''}"
    else:
        figures += ")"
    print(figures, flush=True)


def print_throughput_table(
    clients: Sequence[tuple[str, Sequence[Round]]], rounds_header: str = "rounds (msg/s)"
) -> None:
    """Print each client's best and median rate, the best round's CPU, and every round."""
    rows = [("client", "best msg/s", "median msg/s", "CPU µs/msg", rounds_header)]
    for name, rounds in clients:
        chosen = best(rounds)
        rows.append(
            (
                name,
                f"{chosen.rate:,.0f}",
                f"{median_rate(rounds):,.0f}",
                f"{chosen.cpu_us_per_message:.1f}",
                " ".join(f"{r.rate:,.0f}" for r in rounds),
            )
        )
    print_table(rows)


def print_latency_table(clients: Sequence[tuple[str, Sequence[float]]]) -> None:
    """Print the median, p10 and p90 of each client's times per send (in µs)."""
    rows = [("client", "median", "p10", "p90")]
    for name, times in clients:
        deciles = statistics.quantiles(times, n=10)
        rows.append(
            (name, f"{statistics.median(times):.0f}", f"{deciles[0]:.0f}", f"{deciles[-1]:.0f}")
        )
    print_table(rows)


def print_starved(rounds: Sequence[Round]) -> None:
    """Warn, if any of `rounds` was starved, that its figures measured a busy machine."""
    starved = sum(r.starved for r in rounds)
    if starved:
        print(
            f"  (!) {starved} of {len(rounds)} rounds ran while client and sandbox together "
            f"got under {STARVED_CORES} cores: the machine was busy with something else; take "
            "these figures with care, or run again"
        )


def report_ratio(label: str, ours: Sequence[Round], theirs: Sequence[Round], target: float) -> None:
    """Best against best, and the median of the rounds' own ratios.

    Round n of each client ran back to back with the others' round n, so its ratio
    compares them on the machine as it was then: on a host whose speed drifts, the
    median of those paired ratios is the steadier figure, and the one held to target.
    """
    best_ratio = best(ours).rate / best(theirs).rate
    paired = [a.rate / b.rate for a, b in zip(ours, theirs, strict=True)]
    ratio = statistics.median(paired)
    met = "met" if ratio >= target else "NOT met"
    print(
        f"  {label:<24} {ratio:.3f}  median of the rounds' ratios "
        f"({' '.join(f'{r:.3f}' for r in paired)}); best/best {best_ratio:.3f}; "
        f"target >= {target:.2f}: {met}"
    )
