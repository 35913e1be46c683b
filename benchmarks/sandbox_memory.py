"""The sandbox's memory over a long run: its RSS as it answers up to a million sends.

Not a benchmark of speed (the noxfile's `bench` session does not run it, its name does
not match `bench_*.py`): it measures what `voipnumber bulk --sandbox` over a big file
costs the sandbox, whose records were once kept whole (1.7 GiB at 800,000 sends).

The sandbox runs in a process of its own, built with the keyword arguments given as
`--settings` (JSON); this process sends to it, as fast as `--concurrency` workers can,
one fresh Idempotency-Key per message as the SDK does, and reads the sandbox process's
`VmRSS` from /proc (Linux) at the start and every `--every` sends.

    python benchmarks/sandbox_memory.py --sends 1000000 \\
        --settings '{"record": false, "keep": 0, "keep_keys": 100000}'

The figures in docs/sandbox.md come from it: the settings of `bulk --sandbox` today,
the `voipnumber sandbox` settings, and `{}` (`Sandbox()`); "before" is `{}` run with
the sandbox of an earlier commit on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from typing import Any

import aiohttp
from _harness import (
    BenchmarkError,
    banner,
    bare_headers,
    run_workers,
    sandbox_process,
)

from voipnumber_async.sandbox import DEMO_ACCOUNT_ID, DEMO_API_TOKEN, DEMO_NUMBER, Sandbox

MIB = 1024 * 1024
TEXT = "Your order 12345 has shipped and will arrive on Thursday. Thank you for shopping!"


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid`, from /proc (Linux only)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise BenchmarkError(f"no VmRSS for process {pid}")


async def serve(port: int, settings: dict[str, Any]) -> None:
    sandbox = Sandbox(**settings)
    await sandbox.start("127.0.0.1", port)
    await asyncio.Event().wait()  # until the process is terminated


async def send_all(base_url: str, pid: int, sends: int, concurrency: int, every: int) -> None:
    headers = bare_headers(DEMO_ACCOUNT_ID, DEMO_API_TOKEN)
    counter = iter(range(sends))
    done = 0
    start = time.perf_counter()
    print(f"{'sends':>10} {'RSS MiB':>9} {'growth MiB':>11} {'B/send':>7} {'sends/s':>8}")
    base = rss_bytes(pid)
    print(f"{0:>10,} {base / MIB:>9.1f} {0:>11.1f} {'':>7} {'':>8}")

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal done
            for n in counter:
                body = json.dumps({"from": DEMO_NUMBER, "to": f"+4474{n:08d}", "body": TEXT})
                async with session.post(
                    f"{base_url}/v1/sms/send",
                    data=body.encode(),
                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
                ) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise BenchmarkError(f"send {n}: HTTP {answer.status}")
                done += 1
                if done % every == 0:
                    rss = rss_bytes(pid)
                    rate = done / (time.perf_counter() - start)
                    print(
                        f"{done:>10,} {rss / MIB:>9.1f} {(rss - base) / MIB:>11.1f} "
                        f"{(rss - base) / done:>7.0f} {rate:>8.0f}",
                        flush=True,
                    )

        await run_workers(worker() for _ in range(concurrency))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--every", type=int, default=100_000, help="sends between samples")
    parser.add_argument("--settings", default="{}", help="Sandbox(**settings), as JSON")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    settings = json.loads(args.settings)
    if args.serve is not None:
        asyncio.run(serve(args.serve, settings))
        return
    print(f"{banner('sandbox_memory')}; Sandbox(**{settings}) in its own process")

    def command(port: int) -> list[str]:
        return [sys.executable, __file__, "--serve", str(port), "--settings", args.settings]

    with sandbox_process(command) as (base_url, pid):
        asyncio.run(send_all(base_url, pid, args.sends, args.concurrency, args.every))


if __name__ == "__main__":
    main()
