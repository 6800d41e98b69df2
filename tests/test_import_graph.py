"""No import cycle among aicloud's modules.

The graph is read from the source (the AST), not by importing: an edge for every
``import aicloud...`` and ``from aicloud... import ...`` (relative ones too), at module level
or inside a function, since a function-level import that closes a cycle only moves the
failure to the first call. Imports under ``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "extension" / "aicloud"

#: Cycles known and not yet broken, each as the sorted names of its modules. Keep it empty.
ALLOWED_CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[ast.AST] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(ast.walk(child))
    return skipped


def imports_of(name: str, path: Path, modules: set[str]) -> set[str]:
    """The aicloud modules that ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = _type_checking_only(tree)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                # ``from aicloud.cli import notebooks`` imports a module; ``from
                # aicloud.client import APIError`` imports a name of one.
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif target in modules:
                    found.add(target)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "__pycache__" not in path.parts and "labextension" not in path.parts
    }
    return {name: imports_of(name, path, set(paths)) for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_graph_sees_the_imports_it_should():
    graph = import_graph()
    assert "aicloud.cli.common" in graph["aicloud.cli.main"]  # from ... import names
    assert "aicloud.cli.notebooks" in graph["aicloud.cli.main"]  # from package import module
    assert "aicloud.magics.core" in graph["aicloud.magics"]  # inside a function
    assert "aicloud.notebooks" in graph["aicloud.cli.notebooks"]


def test_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [("a", "b", "c")]


def test_no_import_cycle():
    found = set(cycles(import_graph()))
    new = sorted(found - ALLOWED_CYCLES)
    assert not new, "import cycles: " + "; ".join(" <-> ".join(c) for c in new)
    assert not ALLOWED_CYCLES - found, "broken cycles are still allowed; remove them"
