"""The package's import graph: no cycle, no private name across modules, the rooms' dependencies one way.

Every module of ``integrity`` is parsed (``ast``, nothing is imported) and
every ``import`` / ``from … import`` of an ``integrity`` module is an edge,
those inside functions included: a lazy import is still a dependency, and a
cycle it hides is a cycle. Imports under ``if TYPE_CHECKING:`` are left out
(they never run; annotations may point anywhere). ``from integrity.x import y``
is an edge to ``integrity.x.y`` when that is a module, else to
``integrity.x``.

The tests are walked the same way for one rule: no module under ``tests``
imports a test module (``test_*.py``); what tests share lives in
``tests/helpers.py`` and the ``conftest.py`` files.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "integrity"

# The rooms and what each may import besides the core (README, "Layout").
ROOMS = {
    "jobs": set(),  # long work on task workers: every room may start a job; each room's jobs.py does the work
    "sequences": {"jobs"},
    "duplicates": {"sequences", "jobs"},
    "merge": {"sequences", "duplicates", "jobs"},
    "events": {"sequences", "duplicates", "jobs"},
    "dashboard": {"sequences", "duplicates", "events", "jobs"},  # a card per room's problems
}
# The shared plumbing: it imports nothing but itself.
CORE = {
    "conf",
    "db",
    "pages",
    "permissions",
    "tables",
    "cli",
    "audit",
    "models",
    "migrations",
    "transactions",
    "reads",
    "lists",
    "inputs",
    "guard",
    "signals",
}


def module_name(path: Path) -> str:
    parts = ["integrity", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _imports_of(child))
            continue
        yield from _imports_of(node)


def _imports_of(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    else:
        yield from _imports(node)


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def edges(module: str) -> Iterator[tuple[str, str, int]]:
    """``(imported module, name or "", line)`` for every integrity import ``module`` makes."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "integrity":
                    yield alias.name, "", node.lineno
            continue
        source = _absolute(module, node)
        if source.split(".")[0] != "integrity":
            continue
        for alias in node.names:
            target = f"{source}.{alias.name}"
            yield (target, "", node.lineno) if target in MODULES else (source, alias.name, node.lineno)


GRAPH = {m: sorted({target for target, _name, _line in edges(m)} - {m}) for m in MODULES}


def find_cycle() -> list[str] | None:
    """One cycle of the graph (its modules, the first repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in GRAPH.get(node, []):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = "done"
        return None

    for module in MODULES:
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def room(module: str) -> str:
    """The room (``sequences``, …), ``core`` or ``top`` (admin, command, middleware, …) of a module."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    if len(parts) > 1 and parts[1] in CORE:
        return "core"
    return "top"


def test_every_module_is_found():
    assert {
        "integrity",
        "integrity.pages",
        "integrity.sequences.service",
        "integrity.events.recording",
    } <= set(MODULES)
    assert len(GRAPH["integrity.admin"]) >= 4  # the walk sees imports


def test_no_import_cycle_among_integrity_modules():
    assert find_cycle() is None, " -> ".join(find_cycle() or [])


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {name} from {target}"
        for m in MODULES
        for target, name, line in edges(m)
        if name.startswith("_") and target != m
    ]
    assert private == []


def test_rooms_depend_one_way():
    """Core imports only core; a room imports the core and the rooms below it (no view imports another room's)."""
    wrong = []
    for module in MODULES:
        source = room(module)
        if source == "top":
            continue
        allowed = {"core"} | ({source} | ROOMS[source] if source in ROOMS else set())
        wrong += [f"{module} imports {target}" for target in GRAPH[module] if room(target) not in allowed]
    assert wrong == []


def test_views_do_not_import_other_views():
    views = [m for m in MODULES if m.endswith(".views")]
    assert [(m, t) for m in views for t in GRAPH[m] if t.endswith(".views") or t == "integrity.admin"] == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from integrity.merge import plan", ("integrity.merge.plan", "")),
        ("from integrity.merge.plan import build_plan", ("integrity.merge.plan", "build_plan")),
        ("from integrity.checks import _private", ("integrity.checks", "_private")),
        ("import integrity.events.explain", ("integrity.events.explain", "")),
    ],
)
def test_the_walk_reads_each_form_of_import(source, expected, tmp_path, monkeypatch):
    path = ROOT / "duplicates" / "views.py"
    monkeypatch.setitem(MODULES, "integrity.duplicates.views", tmp_path / "views.py")
    (tmp_path / "views.py").write_text(f"def f():\n    {source}\n")
    assert [e[:2] for e in edges("integrity.duplicates.views")] == [expected]
    assert path.exists()


def test_a_cycle_is_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "integrity.db", [*GRAPH["integrity.db"], "integrity.pages"])
    monkeypatch.setitem(GRAPH, "integrity.pages", [*GRAPH["integrity.pages"], "integrity.db"])
    cycle = find_cycle()
    assert cycle is not None and {"integrity.db", "integrity.pages"} <= set(cycle)


# ---------------------------------------------------------------------------
# The tests: no test module imports another
# ---------------------------------------------------------------------------


TESTS = ROOT.parent / "tests"


def dotted_name(path: Path) -> str:
    parts = ["tests", *path.relative_to(TESTS).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_by(path: Path) -> Iterator[tuple[str, int]]:
    """``(module, line)`` for every module (or ``from`` source and name) ``path`` imports, lazy ones included."""
    module = dotted_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            yield source, node.lineno
            yield from ((f"{source}.{alias.name}", node.lineno) for alias in node.names)


def test_no_test_module_is_imported_by_another_module():
    """A test module's helpers and fixtures would run (autouse ones too) wherever it is imported."""
    files = {dotted_name(p): p for p in sorted(TESTS.rglob("*.py"))}
    test_modules = {m for m, p in files.items() if p.name.startswith("test_")}
    seen = {m: list(imported_by(p)) for m, p in files.items()}
    assert "tests.helpers" in {
        t for imports in seen.values() for t, _line in imports
    }  # the walk sees imports
    wrong = [
        f"{files[m].relative_to(ROOT.parent)}:{line} imports {target}"
        for m, imports in seen.items()
        for target, line in imports
        if target in test_modules and target != m
    ]
    assert wrong == []
