"""Every ```python block in README.md and docs/*.md runs, as a script, against a sandbox.

A runnable block is a complete script: it reads its credentials from the environment
(`AsyncVoipNumber()` with no arguments), which points at a fresh `Sandbox` served from a
thread for each block. Fragments that cannot run alone are tagged ```py and skipped.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from voipnumber_async.sandbox import Sandbox

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
MKDOCS_YML = ROOT / "mkdocs.yml"
TIMEOUT_S = 60
#: Examples run side by side (each a subprocess, most of it waiting).
EXAMPLES_AT_ONCE = 4
MIN_RUNNABLE_BLOCKS = 12

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced blocks in `text` whose info string is exactly `language`."""
    blocks: list[str] = []
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index].rstrip("\n"))
        index += 1
        if opening is None:
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        while index < len(lines):
            line = lines[index]
            index += 1
            closing = _FENCE.match(line.rstrip("\n"))
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(line[len(indent) :] if line.startswith(indent) else line)
        if opening["info"].split(maxsplit=1)[:1] == [language]:
            blocks.append("".join(body))
    return blocks


def nav_pages() -> list[str]:
    """The pages listed under `nav:` in mkdocs.yml (read without a YAML dependency)."""
    pages: list[str] = []
    in_nav = False
    for line in MKDOCS_YML.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\S", line):
            in_nav = line.startswith("nav:")
            continue
        if in_nav:
            pages.extend(re.findall(r"([\w./-]+\.md)\s*$", line))
    return pages


def runnable_examples() -> list[Any]:
    params = []
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        blocks = code_blocks(page.read_text(encoding="utf-8"), "python")
        for number, code in enumerate(blocks, start=1):
            params.append(pytest.param(code, id=f"{page.stem}-{number}"))
    return params


EXAMPLES = runnable_examples()


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd is a scratch directory, so that the package imported is the installed one.
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


#: What an example that needs Redis reads its URL from (the tests' redis-server).
REDIS_URL_VARIABLE = "VOIPNUMBER_REDIS_URL"


def needs_redis(code: str) -> bool:
    """Whether an example needs a Redis: it reads `$VOIPNUMBER_REDIS_URL`."""
    return REDIS_URL_VARIABLE in code


def run_example(code: str, cwd: Path, redis_url: str | None) -> subprocess.CompletedProcess[str]:
    """Run one example as a script against a sandbox of its own (and Redis, if it needs it)."""
    with Sandbox().serve_in_thread() as sandbox:
        env = {**os.environ, **sandbox.env(), "PYTHONWARNINGS": "always::ResourceWarning"}
        if redis_url is not None:
            env[REDIS_URL_VARIABLE] = redis_url
        return run([sys.executable, "-c", code], env, cwd)


@pytest.fixture(scope="module")
def example_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every selected example, started at once, a few at a time.

    Most of an example's time is the interpreter starting and waiting on its sandbox,
    so running them side by side takes a fraction of running them in turn; each test
    then asserts on its own example's run.
    """
    selected = [
        item.callspec.params["code"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_example_runs"
        and hasattr(item, "callspec")
    ]
    redis_url = None
    if any(needs_redis(code) for code in selected):
        # The session's redis-server, emptied once: each such example uses a campaign
        # of its own, and no other test uses that server while these run.
        with contextlib.suppress(pytest.skip.Exception):  # no server: those examples skip
            server = request.getfixturevalue("redis_server")
            server.flush()
            redis_url = server.url
    with ThreadPoolExecutor(max_workers=EXAMPLES_AT_ONCE) as pool:
        yield {
            code: pool.submit(
                run_example,
                code,
                tmp_path_factory.mktemp("example"),
                redis_url if needs_redis(code) else None,
            )
            for code in dict.fromkeys(selected)
            if redis_url is not None or not needs_redis(code)
        }
        pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(
    code: str, example_runs: dict[str, Future[subprocess.CompletedProcess[str]]]
) -> None:
    if code not in example_runs:
        pytest.skip("this example needs Redis, and there is no redis-server")
    result = example_runs[code].result(timeout=TIMEOUT_S * 2)
    assert result.returncode == 0, (
        f"example exited with status {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    assert "ResourceWarning" not in result.stderr, result.stderr


def test_every_nav_page_exists_and_examples_are_found() -> None:
    pages = nav_pages()
    assert "index.md" in pages
    missing = [page for page in pages if not (DOCS / page).is_file()]
    assert not missing, f"pages in mkdocs.yml nav but not in docs/: {missing}"
    unlisted = sorted({page.name for page in DOCS.glob("*.md")} - set(pages))
    assert not unlisted, f"pages in docs/ but not in mkdocs.yml nav: {unlisted}"
    assert len(EXAMPLES) >= MIN_RUNNABLE_BLOCKS, (
        f"only {len(EXAMPLES)} ```python blocks found in {DOCS}; expected at least "
        f"{MIN_RUNNABLE_BLOCKS}"
    )


def test_code_block_parser() -> None:
    text = (
        "```python\nprint(1)\n```\n"
        "```py\nfragment\n```\n"
        "!!! note\n    ```python\n    print(2)\n    ```\n"
        "````md\n```python\nnot a block\n```\n````\n"
    )
    assert code_blocks(text, "python") == ["print(1)\n", "print(2)\n"]


def test_cli_send_to_sandbox(tmp_path: Path) -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "voipnumber_async._cli",
            "send",
            "--sandbox",
            "+447445459147",
            "+447483866525",
            "Thank you",
        ],
        dict(os.environ),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "queued" in result.stdout


def readme_commands() -> list[str]:
    """The README's first shell block: try without an account, then run the tests."""
    (first, *_) = code_blocks(README.read_text(encoding="utf-8"), "sh")
    return first.splitlines()


def test_the_readme_examples_are_run() -> None:
    readme_ids = [param.id for param in EXAMPLES if param.id.startswith("README-")]
    assert readme_ids == ["README-1", "README-2"]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    try_it, run_tests = readme_commands()
    assert "voipnumber send --sandbox" in try_it
    commands = [
        line
        for line in CI_SCRIPT.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert commands == [run_tests]


def test_the_readmes_commands_install_only_inside_a_venv() -> None:
    # Debian's and Ubuntu's system Python refuse `pip install` outside a venv (PEP 668).
    for command in readme_commands():
        venv = re.fullmatch(r"python3 -m venv (\S+) && (.*)", command)
        assert venv is not None, command
        for step in venv[2].split(" && "):
            assert step.startswith(f"{venv[1]}/bin/"), step
