"""The Redis campaign journal: Redis memory per message, and reserve + record throughput.

- Memory: a 1,000,000-message campaign journaled through `RedisJournal.reserve` and
  `record` in batches as `send_many` makes them (`RESERVE_BATCH` / `RECORD_BATCH`),
  every message sent; then the same with 1% failed (details kept) and with
  `keep_sent=True`. Bytes per message: the sum of `MEMORY USAGE` of the campaign's
  keys (exact, `SAMPLES 0`), and the growth of Redis's `used_memory` beside it.
- Throughput: the time of `reserve` + `record` per 1,000 messages, on loopback.

The journal is driven directly, with results made here, not through the sandox: what
is measured is Redis and the journal, not HTTP. A `redis-server` is started by this
script on a free port (`VOIPNUMBER_REDIS_SERVER`, else `redis-server` on PATH). Every
message must end as the journal's status says, or the benchmark raises. It prints
figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

import _harness
import redis.asyncio

from voipnumber_async import OutgoingMessage, SendResult, SentMessage, ServiceUnavailableError
from voipnumber_async._bulk.journaling import RECORD_BATCH, RESERVE_BATCH
from voipnumber_async.redis import RedisJournal, campaign_keys

SENT_AT = datetime(2026, 1, 1, tzinfo=timezone.utc)


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = os.environ.get("VOIPNUMBER_REDIS_SERVER") or shutil.which("redis-server")
    if binary is None:
        raise _harness.BenchmarkError("no redis-server: set VOIPNUMBER_REDIS_SERVER")
    port = _harness.free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", _harness.HOST, "--dir", directory,
         "--save", "", "--appendonly", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _harness.wait_for_port(process, port, "redis-server")
    return process, f"redis://{_harness.HOST}:{port}/0"


def result(index: int, message: OutgoingMessage, key: str, *, fail: bool) -> SendResult:
    if fail:
        error = ServiceUnavailableError("unavailable", code="SERVICE_UNAVAILABLE")
        return SendResult(index=index, message=message, error=error, idempotency_key=key)
    sent = SentMessage(id=f"00000000-0000-4000-8000-{index:012d}", status="queued",
                       body=message.body, timestamp_s=1767225600, created=SENT_AT)  # fmt: skip
    return SendResult(index=index, message=message, sent=sent, idempotency_key=key)


async def journal_campaign(
    url: str, campaign: str, count: int, *, failed_every: int | None, keep_sent: bool
) -> tuple[float, int, int]:
    """Journal `count` messages; (seconds, campaign bytes, used_memory growth)."""
    connection = redis.asyncio.Redis.from_url(url)
    before = int((await connection.info("memory"))["used_memory"])
    started = time.perf_counter()
    async with RedisJournal(url, campaign, keep_sent=keep_sent) as journal:
        await journal.declare(total=count, fingerprint="bench")
        pending: list[SendResult] = []
        for start in range(0, count, RESERVE_BATCH):
            batch = [
                OutgoingMessage(from_="+447445459147", to=f"+4474{i:08d}", body=f"Offer {i}")
                for i in range(start, min(count, start + RESERVE_BATCH))
            ]
            entries = await journal.reserve(start, batch)
            for entry, message in zip(entries, batch, strict=True):
                fail = failed_every is not None and entry.position % failed_every == 0
                pending.append(result(entry.position, message, entry.idempotency_key, fail=fail))
            if len(pending) >= RECORD_BATCH:
                await journal.record(pending)
                pending = []
        await journal.record(pending)
        elapsed = time.perf_counter() - started
        status = await journal.status()
    expected_failed = 0 if failed_every is None else len(range(0, count, failed_every))
    if (status.sent, status.failed, status.reserved) != (count - expected_failed,
                                                          expected_failed, 0):  # fmt: skip
        raise _harness.BenchmarkError(f"the journal does not hold the campaign: {status}")
    usage = 0
    for key in campaign_keys(campaign):
        usage += int(await connection.memory_usage(key, samples=0) or 0)
    after = int((await connection.info("memory"))["used_memory"])
    await connection.aclose()
    return elapsed, usage, after - before


async def main(count: int) -> None:
    print(_harness.banner("bench_redis_journal"))
    with tempfile.TemporaryDirectory() as directory:
        process, url = start_redis(directory)
        try:
            connection = redis.asyncio.Redis.from_url(url)
            version = (await connection.info("server"))["redis_version"]
            await connection.aclose()
            print(f"redis-server {version}; {count:,} messages per campaign\n")
            print(f"{'campaign':<28}{'B/msg (keys)':>14}{'B/msg (used)':>14}"
                  f"{'ms / 1,000 msgs':>17}")  # fmt: skip
            cases = [("all sent", None, False), ("1% failed", 100, False),
                     ("all sent, keep_sent", None, True)]  # fmt: skip
            for number, (name, failed_every, keep_sent) in enumerate(cases):
                elapsed, usage, growth = await journal_campaign(
                    url, f"bench-{number}", count, failed_every=failed_every, keep_sent=keep_sent
                )
                print(f"{name:<28}{usage / count:>14.2f}{growth / count:>14.2f}"
                      f"{elapsed / count * 1e6:>17.1f}")  # fmt: skip
        finally:
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    arguments, _ = parser.parse_known_args()
    asyncio.run(main(arguments.messages))
    sys.exit(0)
