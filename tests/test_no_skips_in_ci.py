"""In CI every skip fails (tests/_no_skips_in_ci.py); elsewhere a skip stays a skip."""

from __future__ import annotations

import _no_skips_in_ci
import pytest

SKIPS = """
import pytest

@pytest.fixture
def unavailable():
    pytest.skip("fixture reason")

@pytest.mark.skipif(True, reason="marker reason")
def test_skipif_marker():
    pass

@pytest.mark.skip(reason="bare marker reason")
def test_skip_marker():
    pass

def test_skip_in_body():
    pytest.skip("body reason")

def test_skip_in_fixture(unavailable):
    pass

@pytest.mark.xfail(reason="expected")
def test_expected_failure():
    raise AssertionError

def test_runs():
    pass
"""

MODULE_SKIP = """
import pytest
pytest.skip("module reason", allow_module_level=True)

def test_never_collected():
    pass
"""

IMPORTORSKIP = """
import pytest
pytest.importorskip("no_such_module_for_voipnumber_tests")

def test_never_collected():
    pass
"""

REASONS = ["marker reason", "bare marker reason", "body reason", "fixture reason"]


def run(pytester: pytest.Pytester, **files: str) -> pytest.RunResult:
    pytester.makepyfile(**files)
    # The sample needs neither asyncio nor hypothesis (whose plugin costs a second a run).
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-p", "no:asyncio", "-p", "no:hypothesispytest",
        plugins=[_no_skips_in_ci],
    )  # fmt: skip


def test_in_ci_every_kind_of_skip_in_a_test_fails_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")

    result = run(pytester, test_skips=SKIPS)

    # A skip in the body fails the test; one in setup (a marker, a fixture) is an error.
    result.assert_outcomes(passed=1, failed=1, errors=3, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    output = result.stdout.str()
    assert output.count("skipped in CI, where every test must run") >= len(REASONS)
    for reason in REASONS:
        assert f"Skipped: {reason}" in output


def test_in_ci_a_module_skipped_while_collected_fails_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")

    result = run(pytester, test_module_skip=MODULE_SKIP, test_importorskip=IMPORTORSKIP)

    result.assert_outcomes(errors=2)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert "Skipped: module reason" in output
    assert "could not import 'no_such_module_for_voipnumber_tests'" in output


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", "no"])
def test_outside_ci_a_skip_is_a_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)

    result = run(
        pytester, test_skips=SKIPS, test_module_skip=MODULE_SKIP, test_importorskip=IMPORTORSKIP
    )

    result.assert_outcomes(passed=1, skipped=6, xfailed=1)
    assert result.ret == pytest.ExitCode.OK
    assert "skipped in CI" not in result.stdout.str()
