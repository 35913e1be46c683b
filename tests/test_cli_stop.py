"""Stopping `voipnumber bulk` is honest (issue #10, section 3): real processes, real signals.

Each test runs the command against a sandbox served from the test's process, sends the
signal once the results file shows the run under way (polled, never slept for), and
checks what the service received against what the results file says.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _support import FROM
from test_cli import read_results, voipnumber, write_csv

from voipnumber_async.sandbox import Fault, Sandbox

ROWS = 120
#: Long enough for any machine, however loaded; the polls end as soon as they can.
DEADLINE_S = 60


def recipient(n: int) -> str:
    return f"+4474838{n:05d}"


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    return write_csv(
        tmp_path / "c.csv", ["to,body", *(f"{recipient(n)},m{n}" for n in range(ROWS))]
    )


def start_bulk(
    sandbox: Sandbox, tmp_path: Path, *arguments: str
) -> tuple[subprocess.Popen[str], Path]:
    """`voipnumber bulk ...` in the background; stderr goes to a file the test can poll."""
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "voipnumber_async._cli", "bulk", *arguments],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env={**os.environ, **sandbox.env(), "COLUMNS": "200"},
        )
    return process, stderr


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert process.poll() is None, "the run ended before the condition held"
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)  # a poll interval, not a wait for something to happen


def complete_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results file being written: only those whose line is complete."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1])))


def finish(process: subprocess.Popen[str], stderr: Path) -> tuple[int, str, str]:
    out, _ = process.communicate(timeout=DEADLINE_S)
    return process.returncode, out, stderr.read_text()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_and_a_resume_sends_exactly_the_rest(
    voipnumber_sandbox: Sandbox, campaign: Path, tmp_path: Path, signum: int, status: int
) -> None:
    results = tmp_path / "r.csv"
    journal = tmp_path / "j.db"
    arguments = [str(campaign), "--from", FROM, "--concurrency", "10", "--journal", str(journal)]
    process, stderr = start_bulk(
        voipnumber_sandbox, tmp_path, *arguments, "--rate", "10", "--results", str(results)
    )
    wait_until(lambda: len(complete_rows(results)) >= 1, process)

    process.send_signal(signum)
    returncode, out, err = finish(process, stderr)

    assert returncode == status, err
    rows = read_results(results)
    assert [row["index"] for row in rows] == [str(n) for n in range(ROWS)]
    outcomes = [row["outcome"] for row in rows]
    assert set(outcomes) <= {"sent", "unknown", "not_sent"}
    not_sent = [row for row in rows if row["outcome"] == "not_sent"]
    assert not_sent, "the run was stopped long before its end"
    # Every request made is a row sent (or unknown): none was made after the stop.
    assert voipnumber_sandbox.request_count == outcomes.count("sent") + outcomes.count("unknown")
    requested = {(m.to, m.body) for m in voipnumber_sandbox.messages}
    assert not {(row["to"], f"m{row['index']}") for row in not_sent} & requested
    assert f"Stopped by {signal.Signals(signum).name}" in err
    assert f"{len(not_sent)} messages were not sent" in err
    assert "Summary" in out

    first_requests = voipnumber_sandbox.request_count
    resume = voipnumber(
        "bulk", *arguments, "--results", str(tmp_path / "r2.csv"), env=voipnumber_sandbox.env()
    )

    assert resume.returncode == 0, resume.stderr
    assert voipnumber_sandbox.request_count - first_requests == len(not_sent)
    sent_pairs = [(m.to, m.body) for m in voipnumber_sandbox.messages]
    assert len(sent_pairs) == len(set(sent_pairs)) == ROWS  # each once, none twice
    assert all(len(group) == 1 for group in voipnumber_sandbox.messages_by_key().values())
    resumed = read_results(tmp_path / "r2.csv")
    assert {row["outcome"] for row in resumed} == {"sent"}
    assert sum(row["resumed"] == "yes" for row in resumed) == ROWS - len(not_sent)


def test_requests_on_the_wire_are_let_finish_and_only_they(
    voipnumber_sandbox: Sandbox, campaign: Path, tmp_path: Path
) -> None:
    voipnumber_sandbox.inject(Fault.slow(1.5, times=3))
    results = tmp_path / "r.csv"
    process, stderr = start_bulk(
        voipnumber_sandbox, tmp_path, str(campaign), "--from", FROM, "--concurrency", "3",
        "--journal", str(tmp_path / "j.db"), "--results", str(results),
    )  # fmt: skip
    wait_until(lambda: voipnumber_sandbox.in_flight == 3, process)

    process.send_signal(signal.SIGTERM)
    returncode, _, err = finish(process, stderr)

    assert returncode == 143, err
    rows = read_results(results)
    assert len(rows) == ROWS
    decided = [row for row in rows if row["outcome"] != "not_sent"]
    # Answered well within the drain: sent, not cut off as outcome unknown.
    assert [(row["index"], row["outcome"]) for row in decided] == [
        ("0", "sent"), ("1", "sent"), ("2", "sent"),
    ]  # fmt: skip
    assert voipnumber_sandbox.request_count == 3
    assert "3 already on the wire were let finish, and 117 messages were not sent" in err


def test_without_a_journal_the_results_still_list_every_message(
    voipnumber_sandbox: Sandbox, campaign: Path, tmp_path: Path
) -> None:
    results = tmp_path / "r.csv"
    process, stderr = start_bulk(
        voipnumber_sandbox,
        tmp_path,
        str(campaign),
        "--from",
        FROM,
        "--rate",
        "20",
        "--results",
        str(results),
    )
    wait_until(lambda: len(complete_rows(results)) >= 1, process)

    process.send_signal(signal.SIGINT)
    returncode, _, err = finish(process, stderr)

    assert returncode == 130, err
    rows = read_results(results)
    assert [row["index"] for row in rows] == [str(n) for n in range(ROWS)]
    assert voipnumber_sandbox.request_count == sum(row["outcome"] == "sent" for row in rows)
    assert "the not_sent rows of" in err


def test_a_second_signal_quits_at_once_keeping_the_rows_written(
    voipnumber_sandbox: Sandbox, campaign: Path, tmp_path: Path
) -> None:
    # Answers still to come when the second signal follows the first: only it ends the run.
    voipnumber_sandbox.inject(Fault.slow(3.0, times=2))
    results = tmp_path / "r.csv"
    process, stderr = start_bulk(
        voipnumber_sandbox, tmp_path, str(campaign), "--from", FROM, "--concurrency", "2",
        "--journal", str(tmp_path / "j.db"), "--results", str(results),
    )  # fmt: skip
    wait_until(lambda: voipnumber_sandbox.in_flight == 2, process)
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: "Send it again to quit at once" in stderr.read_text(), process)

    process.send_signal(signal.SIGTERM)
    returncode, _, err = finish(process, stderr)

    assert returncode == 143, err
    assert "Aborted by a second SIGTERM" in err
    assert "Stopped by" not in err  # it did not wait for the drain to end
    assert voipnumber_sandbox.request_count == 2
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    assert text == "" or text.endswith("\n")  # no row half written


def test_a_killed_run_leaves_every_row_it_decided_and_a_resume_duplicates_none(
    voipnumber_sandbox: Sandbox, campaign: Path, tmp_path: Path
) -> None:
    results = tmp_path / "r.csv"
    arguments = [str(campaign), "--from", FROM, "--journal", str(tmp_path / "j.db")]
    process, _ = start_bulk(
        voipnumber_sandbox, tmp_path, *arguments, "--rate", "10", "--concurrency", "1",
        "--results", str(results),
    )  # fmt: skip
    wait_until(lambda: len(voipnumber_sandbox.messages) >= 5, process)

    process.kill()  # no handler runs: the file holds what was written as the run went
    process.communicate(timeout=DEADLINE_S)

    rows = complete_rows(results)
    accepted = {m.id: m for m in voipnumber_sandbox.messages}
    # One at a time: only the message on the wire, and the one being written, may be
    # accepted by the service and not yet in the file.
    assert len(rows) >= len(accepted) - 2
    for row in rows:
        assert row["outcome"] == "sent"
        message = accepted[row["message_id"]]
        assert (message.to, message.body) == (row["to"], f"m{row['index']}")

    resume = voipnumber("bulk", *arguments, "--resend-unknown", env=voipnumber_sandbox.env())

    assert resume.returncode == 0, resume.stderr
    pairs = [(m.to, m.body) for m in voipnumber_sandbox.messages]
    assert len(pairs) == len(set(pairs)) == ROWS
