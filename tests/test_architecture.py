"""The core's shape: modules import downward only, so a newcomer can read it in order.

A send goes `_client` -> `_sender` -> `_rate`/`_retry` -> `_transport` -> `_aiohttp`,
and `_wire` decodes what comes back (docs/architecture.md). These tests read every
module's imports (not under `TYPE_CHECKING`) and hold the graph free of cycles, so that
no module reaches back up the path.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("voipnumber_async", "voipnumber_sync")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def runtime_imports(path: Path) -> Iterator[str]:
    """The absolute names of the modules `path` imports when it runs."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _outside_type_checking(tree.body):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield target
            # `from . import x` (or `from .pkg import module`) imports the module x too.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _outside_type_checking(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _outside_type_checking(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list) and not isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                yield from _outside_type_checking([c for c in children if isinstance(c, ast.stmt)])


def import_graph() -> dict[str, set[str]]:
    paths = [path for package in PACKAGES for path in (ROOT / package).rglob("*.py")]
    modules = {module_name(path): path for path in paths}
    return {
        name: {target for target in runtime_imports(path) if target in modules and target != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of module-level imports, ignoring a package's imports of its own modules."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        trail.append(name)
        for target in sorted(graph[name]):
            if target.startswith(name + "."):
                continue  # a package importing its own modules is how it exports them
            if state.get(target) == 1:
                return [*trail[trail.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        trail.pop()
        state[name] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("voipnumber_async._sender", "voipnumber_async._client"),
        ("voipnumber_async._transport", "voipnumber_async._sender"),
        ("voipnumber_async._wire", "voipnumber_async._sender"),
    ],
)
def test_a_step_of_the_send_path_does_not_reach_back_up_it(lower: str, upper: str) -> None:
    graph = import_graph()
    reachable: set[str] = set()
    pending = [name for name in graph if name == lower or name.startswith(lower + ".")]
    while pending:
        name = pending.pop()
        if name not in reachable:
            reachable.add(name)
            pending.extend(graph[name])
    assert upper not in reachable


def test_the_graph_holds_the_send_path_as_the_modules_import_it() -> None:
    graph = import_graph()
    assert "voipnumber_async._sender" in graph["voipnumber_async._client"]
    assert "voipnumber_async._transport" in graph["voipnumber_async._sender"]
    assert "voipnumber_async._wire.answers" in graph["voipnumber_async._sender"]
    assert "voipnumber_async._transport" in graph["voipnumber_async._aiohttp"]


def test_the_sync_facade_uses_only_the_async_packages_public_names() -> None:
    graph = import_graph()
    private = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("voipnumber_sync")
        for target in targets
        if target.startswith("voipnumber_async._")
    )
    assert private == []
    assert "voipnumber_async" in graph["voipnumber_sync._client"]


def test_only_the_telemetry_module_imports_opentelemetry() -> None:
    # The API is an optional extra: one module guards its import for all the others.
    importers = sorted(
        module_name(path)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if any(name.startswith("opentelemetry") for name in runtime_imports(path))
    )
    assert importers == ["voipnumber_async._telemetry"]
