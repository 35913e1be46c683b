"""What the distribution ships: exports, typing marker, docstrings, vendored fixtures."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest
from _support import FIXTURES, REPO

import voipnumber_async
import voipnumber_sync
from voipnumber_async import redis as redis_package
from voipnumber_async import sandbox

SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def test_both_packages_are_typed() -> None:
    for package in (voipnumber_async, voipnumber_sync):
        assert (Path(package.__file__).parent / "py.typed").exists()


@pytest.mark.parametrize("module", [voipnumber_async, voipnumber_sync, sandbox, redis_package])
def test_every_public_name_is_exported_and_documented(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"
            for member_name, member in vars(value).items():
                if not member_name.startswith("_") and inspect.isfunction(member):
                    assert inspect.getdoc(member), f"{name}.{member_name} has no docstring"


def test_the_sync_package_reexports_everything_but_the_async_client() -> None:
    async_only = {"AsyncVoipNumber", "AsyncSms", "AsyncSendMany"}
    assert set(voipnumber_async.__all__) - set(voipnumber_sync.__all__) == async_only


# Outside CI a checkout may lack the contract's samples; in CI they are there, and a skip
# fails (tests/_no_skips_in_ci.py). The reason names no path outside the repository.
@pytest.mark.skipif(
    not SHARED_FIXTURES.is_dir(), reason="the wire contract's samples are not beside this checkout"
)
def test_vendored_fixtures_match_the_contract() -> None:
    shared = {path.name: path.read_bytes() for path in SHARED_FIXTURES.glob("*.json")}
    vendored = {path.name: path.read_bytes() for path in FIXTURES.glob("*.json")}
    assert vendored == shared


def error_tree(text: str) -> str:
    start = text.index("```\nVoipNumberError")
    return text[start : text.index("```", start + 3)]


def test_the_errors_page_draws_the_same_tree_as_the_code() -> None:
    page = (REPO / "docs" / "errors.md").read_text()
    assert error_tree(page) == error_tree(voipnumber_async._errors.__doc__ or "")


def test_ci_provides_every_python_the_package_claims() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pytest depends on tomli before 3.11
        import tomli as tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    classifier = re.compile(r"Programming Language :: Python :: (3\.\d+)$")
    claimed = [m[1] for c in project["classifiers"] if (m := classifier.match(c))]
    # nox runs `tests` on each classifier's Python; pyenv's shims find them through
    # .python-version, so it must list the same ones.
    provided = (REPO / ".python-version").read_text(encoding="utf-8").split()

    assert sorted(provided) == sorted(claimed)
    assert project["requires-python"] == f">={min(claimed, key=lambda v: int(v[2:]))}"


def test_scratch_directories_are_outside_the_checkout(tmp_path: Path) -> None:
    # A pytest project made in tmp_path inside the checkout would take this repository's
    # pyproject.toml as its configuration (nox's session.create_tmp() did that).
    assert REPO.resolve() not in tmp_path.resolve().parents
