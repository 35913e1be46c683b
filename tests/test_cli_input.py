"""The CLI checks its input before it touches anything (issue #10, section 6).

Each bad input is one usage error (exit 2) that names the file, the line and the fix;
an earlier run's results file and journal are left as they were, and nothing is sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _support import FROM, TO
from click.testing import CliRunner
from test_cli import read_results, voipnumber, write_csv

from voipnumber_async import APIError, OutcomeUnknownError, RateLimitError
from voipnumber_async._cli import _csv_input, _paths
from voipnumber_async._cli._group import cli
from voipnumber_async._cli._output import shell_text
from voipnumber_async._wire.codes import ERROR_HINTS, STATUS_HINTS
from voipnumber_async.sandbox import Fault, Sandbox

#: What an earlier run left in --results: a refused run must not truncate it.
EARLIER_RESULTS = "index,outcome\n0,sent\n"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    results = tmp_path / "results.csv"
    results.write_text(EARLIER_RESULTS, encoding="utf-8")
    return {"csv": tmp_path / "c.csv", "results": results, "journal": tmp_path / "j.db"}


def bulk_args(files: dict[str, Path], *extra: str) -> list[str]:
    return [
        "bulk", str(files["csv"]), "--results", str(files["results"]),
        "--journal", str(files["journal"]), *extra,
    ]  # fmt: skip


def assert_refused_untouched(
    run: subprocess.CompletedProcess[str], files: dict[str, Path], sandbox: Sandbox, *fragments: str
) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in run.stderr
    assert files["results"].read_text(encoding="utf-8") == EARLIER_RESULTS
    assert not files["journal"].exists()
    assert sandbox.request_count == 0


LONG = "x" * 131_073


@pytest.mark.parametrize(
    ("content", "extra", "fragments"),
    [
        pytest.param(
            f"phone,text\n{TO},x\n".encode(),
            ["--from", FROM],
            ["c.csv", "to,body"],
            id="wrong-columns",
        ),
        pytest.param(b"", ["--from", FROM], ["c.csv is empty", "to,body"], id="empty-file"),
        pytest.param(
            f"to,body,To\n{TO},x,{TO}\n".encode(),
            ["--from", FROM],
            ["column to 2 times"],
            id="duplicate-column",
        ),
        pytest.param(
            f"to,body\n{TO},x\n".encode(), [], ["no from column", "--from"], id="no-sender"
        ),
        pytest.param(
            f"to,body\n{TO},x\n".encode(),
            ["--from", "07445459147"],
            ["--from must be an E.164 number", "'07445459147'"],
            id="sender-not-e164",
        ),
        pytest.param(
            f"to,body\n{TO},fine\n{TO},café\n".encode("latin-1"),
            ["--from", FROM],
            ["c.csv is not UTF-8", "line 3, column 18, byte 0xe9", "save it as UTF-8", "iconv"],
            id="latin-1",
        ),
        pytest.param(
            f"to,body\n{TO},fine\n".encode("utf-16"),
            ["--from", FROM],
            ["c.csv is UTF-16", "save it as UTF-8"],
            id="utf-16",
        ),
        pytest.param(
            f"to,body\n{TO},fine\n".encode("utf-16-le"),
            ["--from", FROM],
            ["c.csv, line 1, holds NUL bytes", "save it as UTF-8"],
            id="utf-16-without-bom",
        ),
        pytest.param(
            f'to,body\n{TO},fine\n{TO},"{LONG}"\n'.encode(),
            ["--from", FROM],
            ["c.csv, line 3", "longer than 131,072 characters", "quote"],
            id="field-too-long",
        ),
        pytest.param(
            f'to,body\n{TO},"never closed\n{TO},x\n'.encode() + b"y" * 131_073,
            ["--from", FROM],
            ["c.csv, line 2", "131,072", "A quote opened and never closed"],
            id="unclosed-quote",
        ),
    ],
)
def test_a_bad_input_is_one_usage_error_and_touches_nothing(
    voipnumber_sandbox: Sandbox,
    files: dict[str, Path],
    content: bytes,
    extra: list[str],
    fragments: list[str],
) -> None:
    files["csv"].write_bytes(content)

    run = voipnumber(*bulk_args(files, *extra), env=voipnumber_sandbox.env())

    assert_refused_untouched(run, files, voipnumber_sandbox, *fragments)


def test_a_utf8_file_with_a_byte_order_mark_is_accepted(
    voipnumber_sandbox: Sandbox, files: dict[str, Path]
) -> None:
    files["csv"].write_bytes(f"to,body\n{TO},café\n".encode("utf-8-sig"))

    run = voipnumber(*bulk_args(files, "--from", FROM), env=voipnumber_sandbox.env())

    assert run.returncode == 0, run.stderr
    assert [m.body for m in voipnumber_sandbox.messages] == ["café"]


def test_a_file_with_a_header_and_no_rows_writes_a_results_file_of_no_rows(
    voipnumber_sandbox: Sandbox, files: dict[str, Path]
) -> None:
    files["csv"].write_text("to,body\n", encoding="utf-8")

    run = voipnumber(*bulk_args(files, "--from", FROM), env=voipnumber_sandbox.env())

    assert run.returncode == 0, run.stderr
    assert read_results(files["results"]) == []
    assert voipnumber_sandbox.request_count == 0


def test_a_journal_of_another_campaign_leaves_the_earlier_results_intact(
    voipnumber_sandbox: Sandbox, files: dict[str, Path]
) -> None:
    files["csv"].write_text(f"to,body\n{TO},first campaign\n", encoding="utf-8")
    assert (
        voipnumber(*bulk_args(files, "--from", FROM), env=voipnumber_sandbox.env()).returncode == 0
    )
    earlier = files["results"].read_bytes()
    files["csv"].write_text(f"to,body\n{TO},another campaign\n", encoding="utf-8")

    run = voipnumber(*bulk_args(files, "--from", FROM), env=voipnumber_sandbox.env())

    assert run.returncode == 3
    assert "JournalMismatchError" in run.stderr
    assert files["results"].read_bytes() == earlier
    assert voipnumber_sandbox.request_count == 1


# --- the paths ----------------------------------------------------------------------------


def test_results_equal_to_the_input_is_refused_and_the_input_kept(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},x"])
    before = campaign.read_bytes()
    journal = tmp_path / "j.db"
    # Spelt differently, and through a hard link: the same file all the same.
    for same in (str(tmp_path / "sub" / ".." / "c.csv"), str(tmp_path / "link.csv")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        if not (tmp_path / "link.csv").exists():
            os.link(campaign, tmp_path / "link.csv")
        run = voipnumber(
            "bulk", "--from", FROM, str(campaign), "--results", same, "--journal", str(journal),
            env=voipnumber_sandbox.env(),
        )  # fmt: skip

        assert run.returncode == 2, run.stderr
        assert "is the same file as FILE" in run.stderr
        assert "would destroy the input" in run.stderr
        assert campaign.read_bytes() == before
        assert not journal.exists()
    assert voipnumber_sandbox.request_count == 0


def test_the_journal_equal_to_the_input_is_refused(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},x"])
    before = campaign.read_bytes()

    run = voipnumber(
        "bulk", "--from", FROM, str(campaign), "--journal", str(campaign),
        env=voipnumber_sandbox.env(),
    )  # fmt: skip

    assert run.returncode == 2
    assert "--journal" in run.stderr and "same file as FILE" in run.stderr
    assert campaign.read_bytes() == before
    assert voipnumber_sandbox.request_count == 0


@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_results_equal_to_the_journal_is_refused_and_a_resume_still_sends_nothing_twice(
    voipnumber_sandbox: Sandbox, tmp_path: Path, suffix: str
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", *(f"{TO},m{n}" for n in range(5))])
    journal = tmp_path / "j.db"
    arguments = ["bulk", "--from", FROM, str(campaign), "--journal", str(journal)]
    assert voipnumber(*arguments, env=voipnumber_sandbox.env()).returncode == 0
    (tmp_path / f"j.db{suffix}").touch()
    before = journal.read_bytes()

    clash = voipnumber(
        *arguments, "--results", str(tmp_path / f"j.db{suffix}"), env=voipnumber_sandbox.env()
    )
    again = voipnumber(*arguments, env=voipnumber_sandbox.env())

    assert clash.returncode == 2
    assert "is the same file as --results" in clash.stderr
    assert "send every message again" in clash.stderr
    assert journal.read_bytes() == before
    assert again.returncode == 0, again.stderr
    assert voipnumber_sandbox.request_count == 5  # the first run's, and no other


@pytest.mark.parametrize("option", ["--results", "--journal"])
def test_an_output_in_a_missing_directory_is_refused_before_anything(
    voipnumber_sandbox: Sandbox, tmp_path: Path, option: str
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},x"])
    missing = tmp_path / "no-such-dir" / "out"
    other = "--journal" if option == "--results" else "--results"

    run = voipnumber(
        "bulk", "--from", FROM, str(campaign), option, str(missing), other, str(tmp_path / "o"),
        env=voipnumber_sandbox.env(),
    )  # fmt: skip

    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert f"the directory {missing.parent} does not exist" in run.stderr
    assert not (tmp_path / "o").exists()
    assert voipnumber_sandbox.request_count == 0


def test_an_output_in_an_unwritable_directory_is_refused_before_anything(
    voipnumber_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, with the file system's answer given: the suite may run as root, whom
    # no permission bit stops.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path: str | os.PathLike[str], mode: int, **kwargs: object) -> bool:
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode)

    monkeypatch.setattr(_paths.os, "access", access)
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},x"])
    journal = tmp_path / "j.db"

    run = CliRunner().invoke(
        cli,
        ["bulk", "--from", FROM, str(campaign), "--results", str(locked / "r.csv"),
         "--journal", str(journal)],
    )  # fmt: skip

    assert run.exit_code == 2, run.output
    assert f"the directory {locked} is not writable" in run.output
    assert not (locked / "r.csv").exists()
    assert not journal.exists()
    assert voipnumber_env.request_count == 0


# --- a file that changes under the run ---------------------------------------------------


def test_a_file_spoilt_during_the_run_stops_it_and_says_where(
    voipnumber_env: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, spoilt = 2000, 1500  # several of the reader's chunks before the spoilt row
    campaign = write_csv(tmp_path / "c.csv", ["to,body", *(f"{TO},m{n:04d}" for n in range(rows))])
    results = tmp_path / "r.csv"
    check = _csv_input.CsvInput.check

    def check_then_spoil(path: str, default_from: str | None) -> _csv_input.CsvInput:
        checked = check(path, default_from)
        data = campaign.read_bytes()
        at = data.index(f"m{spoilt}".encode())
        campaign.write_bytes(data[:at] + b"\xe9" + data[at + 1 :])
        return checked

    monkeypatch.setattr(_csv_input.CsvInput, "check", check_then_spoil)

    run = CliRunner().invoke(
        cli,
        ["bulk", "--from", FROM, str(campaign), "--results", str(results),
         "--journal", str(tmp_path / "j.db")],
    )  # fmt: skip

    assert run.exit_code == 2, run.output
    assert f"c.csv is not UTF-8 (line {spoilt + 2}, column 15, byte 0xe9)" in run.output
    assert "Traceback" not in run.output
    written = read_results(results)
    assert 0 < len(written) <= spoilt
    assert [row["index"] for row in written] == [str(n) for n in range(len(written))]
    assert {row["outcome"] for row in written} <= {"sent", "not_sent"}
    sent = [row for row in written if row["outcome"] == "sent"]
    assert voipnumber_env.request_count == len(sent)
    assert max(m.body for m in voipnumber_env.messages) < f"m{spoilt}"


# --- a blank body, -v, segments - ---------------------------------------------------------


def test_send_refuses_a_blank_body(voipnumber_sandbox: Sandbox) -> None:
    run = voipnumber("send", FROM, TO, " \t ", env=voipnumber_sandbox.env())

    assert run.returncode == 3
    assert "BODY must not be empty or only whitespace" in run.stderr
    assert voipnumber_sandbox.request_count == 0


def test_bulk_fails_each_blank_row_and_sends_the_others(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},one", f'{TO},"   "', f"{TO},two"])
    results = tmp_path / "r.csv"

    run = voipnumber(
        "bulk", "--from", FROM, str(campaign), "--results", str(results),
        env=voipnumber_sandbox.env(),
    )  # fmt: skip

    assert run.returncode == 1
    blank = read_results(results)[1]
    assert (blank["outcome"], blank["error_class"]) == ("failed", "InvalidRequestError")
    assert blank["error"].startswith("body must not be empty or only whitespace")
    assert sorted(m.body for m in voipnumber_sandbox.messages) == ["one", "two"]
    assert voipnumber_sandbox.request_count == 2


def test_segments_refuses_a_blank_body() -> None:
    run = voipnumber("segments", "   ")

    assert run.returncode == 3
    assert "BODY must not be empty or only whitespace" in run.stderr


def test_segments_dash_reads_standard_input_without_the_final_newline() -> None:
    run = subprocess_with_input("a" * 161 + "\n")

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("2 segment(s), GSM-7, 161 units")


def test_segments_dash_refuses_a_blank_standard_input() -> None:
    run = subprocess_with_input("  \n")

    assert run.returncode == 3
    assert "BODY must not be empty" in run.stderr


def subprocess_with_input(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voipnumber_async._cli", "segments", "-"],
        input=text, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "logged", "not_logged"),
    [
        (["send", FROM, TO, "x"], [], ["INFO", "DEBUG"]),
        (["send", FROM, TO, "x", "-v"], ["INFO voipnumber: retrying in"], ["DEBUG"]),
        (["send", "-vv", FROM, TO, "x"], ["INFO voipnumber: retrying in", "DEBUG"], []),
        (["-v", "send", FROM, TO, "x", "-v"], ["INFO voipnumber: retrying in", "DEBUG"], []),
    ],
)
def test_verbose_works_after_the_command_and_adds_to_the_groups(
    voipnumber_sandbox: Sandbox, arguments: list[str], logged: list[str], not_logged: list[str]
) -> None:
    voipnumber_sandbox.inject(Fault.unavailable(retry_after=0))

    run = voipnumber(*arguments, env=voipnumber_sandbox.env())

    assert run.returncode == 0, run.stderr
    for text in logged:
        assert text in run.stderr
    for text in not_logged:
        assert text not in run.stderr


@pytest.mark.parametrize("command", ["segments", "bulk", "listen", "sandbox", "send"])
def test_every_command_takes_verbose_after_its_name(command: str) -> None:
    run = voipnumber(command, "-v", "--help")

    assert run.returncode == 0, run.stderr
    assert "--verbose" in run.stdout


# --- hints in the shell's words -----------------------------------------------------------

PYTHON_ISM = re.compile(r"\b[a-z_]+=(?:\s|\)|$|True|False)")


@pytest.mark.parametrize(
    ("env", "arguments", "status", "shell", "python"),
    [
        (
            {"VOIPNUMBER_ACCOUNT_ID": ""},
            [],
            3,
            ["--account-id", "$VOIPNUMBER_ACCOUNT_ID"],
            "account_id=",
        ),
        (
            {"VOIPNUMBER_API_TOKEN": ""},
            [],
            3,
            ["--api-token", "$VOIPNUMBER_API_TOKEN"],
            "api_token=",
        ),
        (
            {},
            ["--base-url", "ftp://example.com"],
            3,
            ["--base-url", "$VOIPNUMBER_BASE_URL"],
            "base_url=",
        ),
        ({"VOIPNUMBER_API_TOKEN": "wrong"}, [], 4, ["--api-token"], "api_token="),
    ],
)
def test_hints_name_the_flag_and_the_variable_not_the_python_parameter(
    voipnumber_sandbox: Sandbox,
    env: dict[str, str],
    arguments: list[str],
    status: int,
    shell: list[str],
    python: str,
) -> None:
    run = voipnumber("send", *arguments, FROM, TO, "x", env={**voipnumber_sandbox.env(), **env})

    assert run.returncode == status, run.stderr
    for text in shell:
        assert text in run.stderr
    assert python not in run.stderr
    assert PYTHON_ISM.search(run.stderr) is None, run.stderr


def test_an_unknown_outcome_says_how_to_retry_in_the_shells_words(
    voipnumber_sandbox: Sandbox, tmp_path: Path
) -> None:
    voipnumber_sandbox.inject(Fault.server_error())
    sent = voipnumber("send", FROM, TO, "x", env=voipnumber_sandbox.env())
    voipnumber_sandbox.inject(Fault.server_error())
    campaign = write_csv(tmp_path / "c.csv", ["to,body", f"{TO},y"])
    arguments = ["bulk", "--from", FROM, str(campaign), "--journal", str(tmp_path / "j.db")]
    first = voipnumber(
        *arguments, "--results", str(tmp_path / "r1.csv"), env=voipnumber_sandbox.env()
    )
    resumed = voipnumber(
        *arguments, "--results", str(tmp_path / "r2.csv"), env=voipnumber_sandbox.env()
    )

    assert (sent.returncode, first.returncode, resumed.returncode) == (12, 12, 12)
    assert "--idempotency-key" in sent.stderr
    assert PYTHON_ISM.search(sent.stderr) is None, sent.stderr
    (row,) = read_results(tmp_path / "r2.csv")
    assert row["resumed"] == "yes"
    assert "resume with --resend-unknown" in row["error"]
    assert PYTHON_ISM.search(row["error"]) is None, row["error"]
    (row,) = read_results(tmp_path / "r1.csv")
    assert "--resend-unknown" in row["error"]
    assert PYTHON_ISM.search(row["error"]) is None, row["error"]


@pytest.mark.parametrize(
    "hint", [*ERROR_HINTS.values(), *STATUS_HINTS.values()], ids=lambda hint: hint[:30]
)
def test_every_hint_of_the_sdk_reads_as_shell_advice(hint: str) -> None:
    for error in (APIError(hint), RateLimitError(hint), OutcomeUnknownError(hint)):
        assert PYTHON_ISM.search(shell_text(error)) is None, shell_text(error)
