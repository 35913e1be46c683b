"""docs/sandbox.md's pytest example, run as a user would: its files in a project of its own.

The example is a test module for the user's suite, so test_docs_examples (which runs
```python blocks as scripts) cannot run it; here its blocks are written out as the
page says (a pyproject.toml, a conftest.py, a test module) and pytest runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from _support import REPO

PAGE = REPO / "docs" / "sandbox.md"
TEST_MODULE = "test_welcome.py"
ASYNC_TEST = "test_welcome_sms_is_sent_once"


def blocks(language: str) -> list[str]:
    """The ```language blocks of the page's "pytest fixtures" section, in order."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("\n## pytest fixtures\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def the_test_module() -> str:
    (module,) = [block for block in blocks("py") if "def send_welcome_sms(" in block]
    assert f"async def {ASYNC_TEST}(voipnumber_env):" in module
    return module


def run_pytest(project: Path, *, config: str | None, module: str) -> str:
    """pytest over `project/tests`, with the page's conftest; its report."""
    conftest = blocks("py")[0]
    assert conftest.strip() == 'pytest_plugins = ["voipnumber_async.testing"]'
    tests = project / "tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(conftest, encoding="utf-8")
    (tests / TEST_MODULE).write_text(module, encoding="utf-8")
    # A project of its own: this repository's pytest settings must not reach it.
    (project / "pyproject.toml").write_text(config or "", encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    return result.stdout + result.stderr


def test_the_pytest_example_passes_with_the_configuration_the_page_shows(
    tmp_path: Path,
) -> None:
    (config,) = blocks("toml")
    assert 'asyncio_mode = "auto"' in config

    report = run_pytest(tmp_path, config=config, module=the_test_module())

    assert f"PASSED tests/{TEST_MODULE}::{ASYNC_TEST}" in report, report
    assert "2 passed" in report, report


def test_without_that_configuration_the_async_test_does_not_run(tmp_path: Path) -> None:
    # What the page warns of: the setting is what makes the example a test at all.
    report = run_pytest(tmp_path, config=None, module=the_test_module())

    assert f"PASSED tests/{TEST_MODULE}::{ASYNC_TEST}" not in report, report
    assert "async def functions are not natively supported" in report, report


def test_the_marker_the_page_shows_is_the_other_way(tmp_path: Path) -> None:
    marker_example = next(block for block in blocks("py") if "@pytest.mark.asyncio" in block)
    assert f"@pytest.mark.asyncio\nasync def {ASYNC_TEST}(" in marker_example
    module = "import pytest\n" + the_test_module().replace(
        f"async def {ASYNC_TEST}(", f"@pytest.mark.asyncio\nasync def {ASYNC_TEST}("
    )

    report = run_pytest(tmp_path, config=None, module=module)

    assert f"PASSED tests/{TEST_MODULE}::{ASYNC_TEST}" in report, report
