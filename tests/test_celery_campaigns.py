"""Campaigns on real Celery workers: three prefork worker processes, a real Redis, the sandbox.

What a user of `voipnumber worker` relies on: the workers share one account rate,
one 429 pauses them all, a worker killed mid-chunk loses and doubles nothing, and a
Redis restart sends nothing unpaced. The broker has a Redis of its own, so that
restarting the campaigns' Redis tests the pacer and the journal, not Celery's
reconnection.

Nothing here asserts how long anything took; the rate is counted from the times at
which the sandbox received each request, over windows of one second.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _redis import RedisServer, redis_server_binary
from _sandbox_process import SandboxProcess

from voipnumber_async import JournalMismatchError, OutgoingMessage
from voipnumber_async.celery import ChunkOptions, create_app, start_campaign
from voipnumber_async.celery._local import LocalWorker
from voipnumber_async.redis import CampaignStatus, RedisJournal
from voipnumber_async.redis._local import NO_REDIS_SERVER
from voipnumber_async.sandbox import DEMO_NUMBER, Fault

#: The account's limit at the sandbox, and the campaigns' shared rate (below it, so
#: that the sandbox answering 429 would show pacing gone wrong).
LIMIT = 240
RATE = 200
WORKERS = 3
#: The longest a test waits for a campaign to finish before failing: many times what
#: it takes, to bound a hang, not to measure.
DONE_WITHIN_S = 180.0


@pytest.fixture(scope="module")
def redis_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(NO_REDIS_SERVER)
    return binary


@pytest.fixture(scope="module")
def broker(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("broker"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def state(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The campaigns' Redis (journals, pacer): durable, since a test restarts it."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("state"), durable=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def service() -> Iterator[SandboxProcess]:
    """The sandbox, in a process of its own: its `received_at` are what the rates count."""
    with SandboxProcess(rate_limit=LIMIT) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def workers(
    broker: RedisServer,
    state: RedisServer,
    service: SandboxProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[LocalWorker]]:
    directory = tmp_path_factory.mktemp("workers")
    environment = {
        **os.environ,
        **service.env(),
        "VOIPNUMBER_REDIS_URL": state.url,
        "VOIPNUMBER_BROKER_URL": broker.url,
    }
    started = [LocalWorker(f"w{index}", environment, directory) for index in range(WORKERS)]
    # Started together: each takes a few seconds of CPU to import Celery.
    threads = [threading.Thread(target=worker.start) for worker in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        for worker in started:
            assert worker.process is not None, f"{worker.name} did not start: {worker.log_text()}"
        yield started
    finally:
        # Stopped together too: each waits for its pool to finish.
        stopping = [threading.Thread(target=worker.stop) for worker in started]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()


@pytest.fixture
def sandbox(service: SandboxProcess, workers: list[LocalWorker]) -> SandboxProcess:
    """The module's sandbox, emptied for this test, with its workers running."""
    service.reset()
    return service


def recipients(count: int, first: int = 0) -> list[tuple[str, str, str]]:
    """One message per recipient: who got a message twice is a double send."""
    return [(DEMO_NUMBER, f"+4474{n:08d}", f"Campaign message {n}") for n in range(first, count)]


def start(
    broker: RedisServer, state: RedisServer, name: str, messages: list[tuple[str, str, str]]
) -> None:
    app = create_app(broker.url, redis=state.url)
    started = asyncio.run(
        start_campaign(app, name, messages, chunk_size=100, options=ChunkOptions(rate=RATE))
    )
    assert started.enqueued == started.chunks == -(-len(messages) // 100)


def status_of(state: RedisServer, name: str) -> CampaignStatus:
    async def read() -> CampaignStatus:
        async with RedisJournal(state.url, name) as journal:
            return await journal.status()

    return asyncio.run(read())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DONE_WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def wait_until_done(state: RedisServer, name: str) -> CampaignStatus:
    final: list[CampaignStatus] = []

    def done() -> bool:
        final[:] = [status_of(state, name)]
        return final[0].done

    wait_for(done, f"campaign {name} to finish")
    return final[0]


def accepted_times(sandbox: SandboxProcess) -> list[float]:
    """When each request the sandbox accepted (a new message, not a replay) arrived."""
    return sorted(
        request.received_at
        for request in sandbox.requests
        if request.status is not None and 200 <= request.status < 300 and not request.replayed
    )


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window of one second (sliding, from each arrival)."""
    busiest = end = 0
    for begin, at in enumerate(times):
        while end < len(times) and times[end] < at + 1.0:
            end += 1
        busiest = max(busiest, end - begin)
    return busiest


def assert_each_recipient_once(
    sandbox: SandboxProcess, messages: list[tuple[str, str, str]]
) -> None:
    by_recipient = collections.Counter(message.to for message in sandbox.messages)
    assert sorted(by_recipient) == sorted(to for _, to, _ in messages), "a message was lost"
    assert {to: n for to, n in by_recipient.items() if n > 1} == {}, "a message was sent twice"


def chunk_runs(workers: list[LocalWorker], name: str) -> dict[str, int]:
    """How many chunks of campaign `name` each worker finished, from its log."""
    return {w.name: w.log_text().count(f"of {name!r}: ") for w in workers}


def test_three_workers_share_one_rate(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, workers: list[LocalWorker]
) -> None:
    messages = recipients(1500)
    start(broker, state, "shared-rate", messages)

    final = wait_until_done(state, "shared-rate")

    assert (final.sent, final.failed, final.unknown, final.remaining) == (1500, 0, 0, 0)
    assert_each_recipient_once(sandbox, messages)
    assert all(runs > 0 for runs in chunk_runs(workers, "shared-rate").values()), (
        "every worker should have sent chunks"
    )
    times = accepted_times(sandbox)
    measured = (len(times) - 1) / (times[-1] - times[0])
    assert abs(measured - RATE) <= 0.05 * RATE, f"{measured:.1f} msg/s against {RATE}"
    assert busiest_second(times) <= 1.10 * RATE
    assert sandbox.status_counts.get(429, 0) == 0, "the sandbox refused requests over its limit"


def test_one_429_pauses_every_worker(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, workers: list[LocalWorker]
) -> None:
    messages = recipients(900)
    start(broker, state, "one-pause", messages)
    wait_for(lambda: sandbox.accepted_count >= 200, "the campaign to be under way")
    sandbox.inject(Fault.rate_limited(retry_after=2))

    final = wait_until_done(state, "one-pause")

    assert (final.sent, final.failed, final.unknown) == (900, 0, 0)
    assert_each_recipient_once(sandbox, messages)
    (refused,) = [r.received_at for r in sandbox.requests if r.status == 429]
    during = [t for t in accepted_times(sandbox) if refused + 0.3 < t < refused + 1.9]
    # Those in flight when the 429 came may still arrive; nobody starts a new one.
    assert during == [], f"{len(during)} requests were sent during the pause"
    assert any(t > refused + 2 for t in accepted_times(sandbox))


def test_a_worker_killed_mid_chunk_loses_and_doubles_nothing(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, workers: list[LocalWorker]
) -> None:
    messages = recipients(900)
    start(broker, state, "killed", messages)
    wait_for(lambda: sandbox.accepted_count >= 150, "the campaign to be under way")

    killed = workers[0].kill_pool_processes()

    assert killed, "the worker had no pool process to kill"
    final = wait_until_done(state, "killed")
    assert (final.sent, final.failed, final.unknown, final.remaining) == (900, 0, 0, 0)
    assert_each_recipient_once(sandbox, messages)
    assert sandbox.accepted_count == 900
    logs = "".join(worker.log_text() for worker in workers)
    assert "of 'killed': starting again" in logs, "the killed chunk was not redelivered"


def test_a_redis_restart_sends_nothing_unpaced_and_the_campaign_completes(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, workers: list[LocalWorker]
) -> None:
    messages = recipients(900)
    start(broker, state, "restarted", messages)
    wait_for(lambda: sandbox.accepted_count >= 150, "the campaign to be under way")

    state.kill()
    down_at = time.time()  # the clock of the sandbox's `received_at`
    time.sleep(1.5)  # the outage being tested, not a wait for anything
    state.start()
    up_at = time.time()

    final = wait_until_done(state, "restarted")
    assert (final.sent, final.failed, final.unknown, final.remaining) == (900, 0, 0, 0)
    assert_each_recipient_once(sandbox, messages)
    # A turn leased before the crash may still be used; none is taken while it is down.
    during = [t for t in accepted_times(sandbox) if down_at + 0.3 < t < up_at]
    assert during == [], f"{len(during)} requests were sent while Redis was down"
    assert busiest_second(accepted_times(sandbox)) <= 1.10 * RATE


def test_the_same_name_refuses_another_input_before_enqueueing(
    broker: RedisServer, state: RedisServer
) -> None:
    app = create_app(broker.url, redis=state.url)
    options = ChunkOptions(rate=RATE)
    # A queue no worker reads: what was enqueued stays there to be counted.
    asyncio.run(start_campaign(app, "one-input", recipients(10), options=options, queue=QUEUE))
    assert _queue_length(broker) == 1

    with pytest.raises(JournalMismatchError, match="one-input"):
        asyncio.run(
            start_campaign(app, "one-input", recipients(15, 5), options=options, queue=QUEUE)
        )

    assert _queue_length(broker) == 1


def test_a_longer_input_under_the_same_name_is_refused_at_its_first_extra_chunk(
    broker: RedisServer, state: RedisServer
) -> None:
    app = create_app(broker.url, redis=state.url)
    options = ChunkOptions(rate=RATE)
    asyncio.run(
        start_campaign(app, "grown", recipients(20), options=options, chunk_size=10, queue=QUEUE)
    )
    assert _queue_length(broker) == 2

    with pytest.raises(JournalMismatchError, match="grown"):
        asyncio.run(
            start_campaign(
                app, "grown", recipients(30), options=options, chunk_size=10, queue=QUEUE
            )
        )

    # Its first two chunks are the campaign's own, not sent yet, so enqueued again
    # (their runs skip what the other sends); the third is not.
    assert _queue_length(broker) == 4


QUEUE = "nobody-reads-this"


@pytest.fixture(autouse=True)
def _empty_queue(broker: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(broker.url)
    try:
        client.delete(QUEUE)
    finally:
        client.close()


def _queue_length(broker: RedisServer) -> int:
    import redis

    client = redis.Redis.from_url(broker.url)
    try:
        return int(client.llen(QUEUE))
    finally:
        client.close()


# --- the CLI -------------------------------------------------------------------------


def voipnumber(
    *args: str, broker: RedisServer, state: RedisServer, timeout: float = DONE_WITHIN_S
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "COLUMNS": "200",
        "VOIPNUMBER_REDIS_URL": state.url,
        "VOIPNUMBER_BROKER_URL": broker.url,
    }
    return subprocess.run(
        [sys.executable, "-m", "voipnumber_async._cli", *args],
        capture_output=True, text=True, timeout=timeout, env=environment, check=False,
    )  # fmt: skip


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["from", "to", "body"])
        writer.writerows(rows)
    return path


def test_the_cli_starts_follows_and_exports_a_campaign(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, tmp_path: Path
) -> None:
    messages = recipients(300)
    people = write_csv(tmp_path / "people.csv", messages)

    started = voipnumber(
        "campaign", "start", str(people), "--name", "cli", "--rate", str(RATE),
        "--chunk-size", "100", "--follow", broker=broker, state=state,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    assert "300 messages in 3 chunks; 3 enqueued" in started.stderr
    assert_each_recipient_once(sandbox, messages)
    status = voipnumber("campaign", "status", "cli", "--json", broker=broker, state=state)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert (shown["sent"], shown["failed"], shown["unknown"], shown["remaining"]) == (300, 0, 0, 0)
    assert shown["done"] is True
    exported = voipnumber(
        "campaign", "results", "cli", "-o", str(tmp_path / "out.csv"), broker=broker, state=state
    )
    assert exported.returncode == 0, exported.stderr
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["position"]) for row in rows] == list(range(300))
    assert {row["outcome"] for row in rows} == {"sent"}
    again = voipnumber(
        "campaign", "start", str(people), "--name", "cli", "--rate", str(RATE),
        "--chunk-size", "100", broker=broker, state=state,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "0 enqueued, 3 already done" in again.stderr
    other = write_csv(tmp_path / "other.csv", recipients(300, 1))
    refused = voipnumber(
        "campaign", "start", str(other), "--name", "cli", "--rate", str(RATE),
        "--chunk-size", "100", broker=broker, state=state,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "JournalMismatchError" in refused.stderr or "another input" in refused.stderr
    assert sandbox.accepted_count == 300


def test_resend_unknown_sends_only_the_unknowns_with_their_original_keys(
    sandbox: SandboxProcess, broker: RedisServer, state: RedisServer, tmp_path: Path
) -> None:
    messages = recipients(200)
    people = write_csv(tmp_path / "people.csv", messages)
    # Enqueued on a queue no worker reads: the campaign is declared, nothing is sent...
    parked = voipnumber(
        "campaign", "start", str(people), "--name", "unknowns", "--rate", str(RATE),
        "--chunk-size", "100", "--queue", QUEUE, broker=broker, state=state,
    )  # fmt: skip
    assert parked.returncode == 0, parked.stderr
    # ...then a worker reserves the first chunk and dies before sending or recording it.
    keys = asyncio.run(_reserve(state, "unknowns", messages[:100]))

    resent = voipnumber(
        "campaign", "resend-unknown", "unknowns", str(people), "--rate", str(RATE),
        "--chunk-size", "100", broker=broker, state=state,
    )  # fmt: skip

    assert resent.returncode == 0, resent.stderr
    assert "1 enqueued, 1 already done" in resent.stderr
    wait_for(lambda: status_of(state, "unknowns").sent == 100, "the unknowns to be sent")
    assert sorted(m.idempotency_key or "" for m in sandbox.messages) == sorted(keys)
    assert_each_recipient_once(sandbox, messages[:100])
    final = status_of(state, "unknowns")
    assert (final.sent, final.unknown, final.remaining) == (100, 0, 100)


async def _reserve(
    state: RedisServer, name: str, messages: list[tuple[str, str, str]]
) -> list[str]:

    async with RedisJournal(state.url, name) as journal:
        entries = await journal.reserve(0, [OutgoingMessage.coerce(m) for m in messages])
    assert {entry.outcome for entry in entries} == {"reserved"}
    return [entry.idempotency_key for entry in entries]


def test_the_demo_sends_every_row_once_under_the_rate(redis_binary: str) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "voipnumber_async._cli", "campaign", "demo", "--rows", "400",
         "--workers", "2", "--rate", "200", "--chunk-size", "100", "--kill-a-worker"],
        capture_output=True, text=True, timeout=DONE_WITHIN_S, check=False,
        env={**os.environ, "COLUMNS": "200", "VOIPNUMBER_REDIS_SERVER": redis_binary},
    )  # fmt: skip

    assert demo.returncode == 0, demo.stderr
    assert "killed worker process" in demo.stderr
    assert "accepted 400 messages for 400 rows: 400 recipients, 0 sent twice, 0 missing" in (
        demo.stdout
    )
