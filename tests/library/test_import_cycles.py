"""The integration's modules import each other without cycles, type-checking imports included.

A cycle hidden behind `if TYPE_CHECKING:` still ties its modules together: none of them can be
read, typed or moved on its own, and the day one of those imports is needed at run time the
package stops loading. So the graph is built from the source (every import, wherever it stands)
rather than from what happens to be imported at run time.
"""

import ast
from collections import deque
from pathlib import Path

import pytest

PACKAGE = "custom_components.ai_security"
ROOT = Path(__file__).parent.parent.parent / "custom_components" / "ai_security"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Return every module under root by dotted name (a package's __init__ as the package)."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = path
    return modules


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """Return the absolute name of the module a `from ... import` statement names."""
    if node.level == 0:
        return node.module or ""
    # A package's own relative imports start from the package; a module's from its parent.
    base = module.split(".")
    drop = node.level - 1 if is_package else node.level
    if drop:
        base = base[:-drop]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Return the modules of known that the module at path imports, wherever the import stands.

    `from pkg import name` counts as an import of pkg.name when that is a module, and of pkg
    otherwise (name is then something pkg defines). The parent packages Python loads on the way
    are not edges: every module would depend on the package then, and none of it is chosen.
    """
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else source)
    return {name for name in found if name in known and name != module}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Return, for every module of the package at root, the package's modules it imports."""
    modules = module_names(root, package)
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def _components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of graph (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _shortest_path(
    graph: dict[str, set[str]], start: str, goal: str, within: set[str]
) -> list[str]:
    """Return the shortest import path from start to goal that stays within a component."""
    came_from: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while path[-1] != start:
                path.append(came_from[path[-1]])
            return path[::-1]
        for child in sorted(graph[node] & within):
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{goal} cannot be reached from {start}")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return, for every import that is on a cycle, the shortest cycle it is on, each once.

    Every such import is named on a path that goes round, so the report shows each import that
    could be cut, not only the first cycle found; a cycle starts at its first module in sorted
    order.
    """
    cycles: list[list[str]] = []
    for component in _components(graph):
        members = set(component)
        if len(members) < 2:
            continue
        for module in component:
            for imported in sorted(graph[module] & members):
                ring = [module, *_shortest_path(graph, imported, module, members)[:-1]]
                first = ring.index(min(ring))
                cycle = [*ring[first:], *ring[:first], ring[first]]
                if cycle not in cycles:
                    cycles.append(cycle)
    return cycles


def _write(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


def test_checker_resolves_every_import_form(tmp_path: Path) -> None:
    """Relative, absolute, type-checking and function-level imports all become edges."""
    _write(
        tmp_path,
        {
            "__init__.py": "from .a import A\nfrom . import b\n",
            "a.py": (
                "from typing import TYPE_CHECKING\n"
                "import os\n"
                "if TYPE_CHECKING:\n"
                "    from . import Entry\n"
                "def f():\n"
                "    import pkg.sub.c\n"
            ),
            "b.py": "from .sub import c as d\nfrom .sub.c import C\n",
            "sub/__init__.py": "from .. import b\nfrom .c import C\n",
            "sub/c.py": "from ..a import A\nfrom .. import a\nfrom . import nothing_here\n",
        },
    )
    assert import_graph(tmp_path, "pkg") == {
        "pkg": {"pkg.a", "pkg.b"},
        "pkg.a": {"pkg", "pkg.sub.c"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": {"pkg.b", "pkg.sub.c"},
        "pkg.sub.c": {"pkg.a", "pkg.sub"},
    }


def test_checker_names_each_cycle() -> None:
    """Each import on a cycle is named on one, from its first module; a chain back is needed."""
    graph = {
        "p": {"p.a"},
        "p.a": {"p.b", "p.c"},
        "p.b": {"p.a"},
        "p.c": {"p.d"},
        "p.d": {"p.e"},
        "p.e": {"p.c"},
        "p.f": {"p.a"},
    }
    assert find_cycles(graph) == [["p.c", "p.d", "p.e", "p.c"], ["p.a", "p.b", "p.a"]]
    assert find_cycles({"p": {"p.a"}, "p.a": set()}) == []
    shared = {"p.a": {"p.b", "p.c"}, "p.b": {"p.a"}, "p.c": {"p.a"}}
    assert find_cycles(shared) == [["p.a", "p.b", "p.a"], ["p.a", "p.c", "p.a"]]


def test_no_import_cycles() -> None:
    """No module of the integration imports, even only for type checking, one that imports it."""
    graph = import_graph(ROOT, PACKAGE)
    assert f"{PACKAGE}.coordinator" in graph, "the package's modules were not found"
    cycles = [" -> ".join(cycle) for cycle in find_cycles(graph)]
    if cycles:
        pytest.fail("Import cycles:\n" + "\n".join(cycles))


def test_nothing_imports_the_package() -> None:
    """The package's __init__ is Home Assistant's entry point, imported by no module of its own.

    It imports every part it sets up, so a module importing it (say, for the config entry type)
    joins a cycle as soon as setup uses that module; what modules share lives beside them.
    """
    graph = import_graph(ROOT, PACKAGE)
    assert sorted(name for name, imported in graph.items() if PACKAGE in imported) == []


def test_no_module_postpones_its_annotations() -> None:
    """Python 3.14 evaluates annotations lazily: `from __future__ import annotations` is noise.

    Home Assistant core dropped it; a module that brings it back (copied from an older
    integration) would turn its annotations into strings for everything that reads them.
    """
    postponing = sorted(
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if any(
            isinstance(node, ast.ImportFrom)
            and node.module == "__future__"
            and any(alias.name == "annotations" for alias in node.names)
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        )
    )
    assert postponing == []
