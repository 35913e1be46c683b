"""A pytest plugin (loaded by conftest.py): in CI, a skipped test is a failed one.

A skip in CI is a test that never ran where it counts, so every kind fails there: a
`skipif` marker, `pytest.skip()` in a test or a fixture, a module-level skip and
`pytest.importorskip`. The failure keeps the skip's reason. xfail is untouched: it
states an expected failure, not a test left out. Outside CI a skip stays a skip.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Mapping

import pytest

#: Values of `CI` that mean "not CI" (CI services set CI=true).
_NOT_CI = frozenset({"", "0", "false", "no"})


def in_ci(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the suite runs in CI, as the `CI` environment variable says."""
    return environ.get("CI", "").strip().lower() not in _NOT_CI


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    # A skip's longrepr is (path, line, "Skipped: reason").
    if isinstance(longrepr, tuple):
        path, line, reason = longrepr
        return f"{path}:{line}: {reason}"
    return str(longrepr)


def _fail_a_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and in_ci():
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI, where every test must run: {_skip_reason(report)}\n"
            "Make the test run here, or limit it to the platforms it is about."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail a test skipped in setup (markers, fixtures) or in its body."""
    report = yield
    _fail_a_skip(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Fail a module skipped while it is collected (module-level skip, importorskip)."""
    report = yield
    _fail_a_skip(report)
    return report
