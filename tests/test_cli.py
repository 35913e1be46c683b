"""The `voipnumber` command, run as users run it: a real process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _support import FROM, TO

from voipnumber_async._cli._output import EXIT_STATUS
from voipnumber_async.sandbox import OTHER_ACCOUNT_NUMBER, Sandbox


def voipnumber(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voipnumber_async._cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def test_send_to_the_embedded_sandbox_prints_the_queued_message() -> None:
    result = voipnumber("send", "--sandbox", FROM, TO, "Thank you")

    assert result.returncode == 0, result.stderr
    assert "queued" in result.stdout
    assert "Thank you" in result.stdout


def test_send_json_prints_one_line_in_the_services_shape() -> None:
    result = voipnumber("send", "--sandbox", "--json", FROM, TO, "Thank you")

    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    message = json.loads(line)
    assert message["status"] == "queued"
    assert message["body"] == "Thank you"


def test_send_uses_credentials_from_the_environment(voipnumber_sandbox: Sandbox) -> None:
    result = voipnumber("send", FROM, TO, "from env", env=voipnumber_sandbox.env())

    assert result.returncode == 0, result.stderr
    assert [m.body for m in voipnumber_sandbox.messages] == ["from env"]


def test_an_api_error_prints_code_and_hint_and_exits_with_its_class_status() -> None:
    result = voipnumber("send", "--sandbox", OTHER_ACCOUNT_NUMBER, TO, "x")

    assert result.returncode == 6
    assert "NUMBER_OWNERSHIP" in result.stderr
    assert "send from a number on this account" in result.stderr


def test_invalid_input_exits_3_and_names_the_field() -> None:
    result = voipnumber("send", "--sandbox", FROM, "0748 3866525", "x")

    assert result.returncode == 3
    assert "TO must be an E.164 number" in result.stderr  # the name the user typed


def test_an_invalid_sender_is_named_as_typed_not_as_the_python_parameter() -> None:
    result = voipnumber("send", "--sandbox", "07445459147", TO, "x")

    assert result.returncode == 3
    assert "FROM must be an E.164 number" in result.stderr
    assert "from_" not in result.stderr


def test_missing_credentials_say_which_variable_to_set() -> None:
    env = {k: "" for k in ("VOIPNUMBER_ACCOUNT_ID", "VOIPNUMBER_API_TOKEN")}
    result = voipnumber("send", FROM, TO, "x", env=env)

    assert result.returncode == 3
    assert "VOIPNUMBER_ACCOUNT_ID" in result.stderr


def test_an_unknown_outcome_prints_the_key_to_retry_with(voipnumber_sandbox: Sandbox) -> None:
    from voipnumber_async.sandbox import Fault

    voipnumber_sandbox.inject(Fault.server_error())
    result = voipnumber("send", FROM, TO, "x", env=voipnumber_sandbox.env())

    assert result.returncode == 12
    key = voipnumber_sandbox.messages[0].idempotency_key
    assert f"--idempotency-key {key}" in result.stderr

    retried = voipnumber(
        "send", "--idempotency-key", str(key), FROM, TO, "x", env=voipnumber_sandbox.env()
    )
    assert retried.returncode == 0, retried.stderr
    assert len(voipnumber_sandbox.messages) == 1


def test_exit_statuses_are_distinct_per_class() -> None:
    assert len(set(EXIT_STATUS.values())) == len(EXIT_STATUS)
    assert 0 not in EXIT_STATUS.values() and 2 not in EXIT_STATUS.values()  # 2 is click's usage


def test_segments_estimates_a_body() -> None:
    result = voipnumber("segments", "a" * 161)

    assert result.returncode == 0
    assert result.stdout.startswith("2 segment(s), GSM-7")


def test_the_standalone_sandbox_serves_another_process() -> None:
    with Sandbox().serve_in_thread() as probe:
        port = probe.port  # a free port, released when the probe stops
    server = subprocess.Popen(
        [sys.executable, "-m", "voipnumber_async._cli", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        env = {
            "VOIPNUMBER_BASE_URL": f"http://127.0.0.1:{port}",
            "VOIPNUMBER_ACCOUNT_ID": "demo-account",
            "VOIPNUMBER_API_TOKEN": "demo-token",
        }
        deadline = time.monotonic() + 20
        while True:
            result = voipnumber("send", "--max-retries", "0", FROM, TO, "standalone", env=env)
            if result.returncode != 11 or time.monotonic() > deadline:  # 11: not up yet
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stderr
        assert "queued" in result.stdout
    finally:
        server.terminate()
        out, err = server.communicate(timeout=20)
    assert f"VOIPNUMBER_BASE_URL=http://127.0.0.1:{port}" in out
    assert "POST /v1/sms/send -> 200" in err


@pytest.mark.parametrize("args", [["--help"], ["send", "--help"], ["--version"]])
def test_help_and_version(args: list[str]) -> None:
    result = voipnumber(*args)
    assert result.returncode == 0
    assert result.stdout


# --- bulk ----------------------------------------------------------------------------------


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def read_results(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_bulk_sends_every_row_and_writes_one_result_row_each(tmp_path: Path) -> None:
    campaign = write_csv(
        tmp_path / "campaign.csv",
        ["to,body", *(f'+4474838665{n:02d},"Hello, {n}"' for n in range(30))],
    )
    results = tmp_path / "results.csv"

    run = voipnumber("bulk", "--sandbox", str(campaign), "--results", str(results))

    assert run.returncode == 0, run.stderr
    rows = read_results(results)
    assert [row["index"] for row in rows] == [str(n) for n in range(30)]
    assert {row["outcome"] for row in rows} == {"sent"}
    assert all(row["message_id"] and row["idempotency_key"] for row in rows)
    assert "30/30" in run.stderr  # plain progress lines when piped
    assert "Summary" in run.stdout


def test_bulk_exits_1_when_a_row_failed_and_says_why_in_the_results(tmp_path: Path) -> None:
    campaign = write_csv(
        tmp_path / "c.csv", ["to,body,from", f"{TO},fine,{FROM}", f"0748,bad,{FROM}"]
    )
    results = tmp_path / "results.csv"

    run = voipnumber("bulk", "--sandbox", str(campaign), "--results", str(results))

    assert run.returncode == 1
    failed = read_results(results)[1]
    assert (failed["outcome"], failed["error_class"]) == ("failed", "InvalidRequestError")
    assert "E.164" in failed["error"]


def test_bulk_exits_12_when_an_outcome_is_unknown(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    from voipnumber_async.sandbox import Fault

    voipnumber_sandbox.inject(Fault.server_error())
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},a", f"{TO},b"])

    run = voipnumber("bulk", "--from", FROM, str(campaign), env=voipnumber_sandbox.env())

    assert run.returncode == 12
    assert "outcome unknown" in run.stdout


def test_bulk_resumes_from_its_journal_without_sending_again(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", *(f"{TO},m{n}" for n in range(20))])
    journal = tmp_path / "campaign.db"
    arguments = ["bulk", "--from", FROM, "--journal", str(journal), str(campaign)]

    first = voipnumber(*arguments, env=voipnumber_sandbox.env())
    again = voipnumber(*arguments, env=voipnumber_sandbox.env())

    assert (first.returncode, again.returncode) == (0, 0)
    assert "sent by an earlier run" in again.stdout
    assert len(voipnumber_sandbox.messages) == 20


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        (["phone,text", f"{TO},x"], ["--sandbox"], "to,body"),
        (["to,body", f"{TO},x"], [], "--from"),
    ],
)
def test_bulk_explains_a_file_it_cannot_use(
    tmp_path: Path, rows: list[str], extra: list[str], message: str
) -> None:
    campaign = write_csv(tmp_path / "c.csv", rows)
    env = {"VOIPNUMBER_ACCOUNT_ID": "a", "VOIPNUMBER_API_TOKEN": "t"}

    run = voipnumber("bulk", *extra, str(campaign), env=env)

    assert run.returncode == 2
    assert message in run.stderr
